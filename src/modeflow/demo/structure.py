"""Figures of the structure MoDE exploits, measured on a demo pool's clean rows.

- caption repeat rate: the share of captions that some other row repeats word for word; web
  alt text rarely repeats, while a pool of templated captions repeats almost all of them.
- same-class partners per batch: in a batch of B rows drawn from one domain (a stand-in for one
  cluster), how many other rows share a row's class on average: (B - 1) * sum_k p_k^2 with p_k
  the class shares. Each such partner is a false negative for the contrastive loss.
Written into demo.json, so every run states them; tests bound them.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping, Sequence

import numpy as np


def caption_repeat_rate(captions: Sequence[str]) -> float:
    """Share of captions whose exact text occurs more than once in `captions`."""
    if not captions:
        return 0.0
    counts = Counter(captions)
    return sum(c for c in counts.values() if c > 1) / len(captions)


def same_class_partners(labels: Iterable[str], batch_size: int) -> float:
    """Expected rows sharing a row's class in a batch of `batch_size` drawn from these rows."""
    counts = np.asarray(list(Counter(labels).values()), dtype=np.float64)
    if counts.size == 0:
        return 0.0
    shares = counts / counts.sum()
    return float((batch_size - 1) * np.sum(shares ** 2))


def pool_structure(captions: Sequence[str], domains: Sequence[str], labels: Sequence[str],
                   classes: Mapping[str, Sequence[str]], batch_size: int = 128) -> dict:
    """The figures over clean rows (captions, domains and labels aligned), per domain and overall."""
    per_domain = {}
    for name in classes:
        rows = [i for i, d in enumerate(domains) if d == name]
        per_domain[name] = {
            "classes": len(classes[name]),
            "classes_in_clean_rows": len({labels[i] for i in rows}),
            "clean_rows": len(rows),
            "caption_repeat_rate": round(caption_repeat_rate([captions[i] for i in rows]), 4),
            "same_class_partners_per_batch": round(same_class_partners([labels[i] for i in rows], batch_size), 3),
        }
    return {"batch_size": batch_size, "clean_rows": len(captions),
            "distinct_clean_captions": len(set(captions)),
            "caption_repeat_rate": round(caption_repeat_rate(list(captions)), 4),
            "per_domain": per_domain}
