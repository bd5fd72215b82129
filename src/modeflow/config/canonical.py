"""One spelling of a config value: every mapping's keys sorted, recursively.

Snakemake records a job's params by their repr and reruns the job when it changes; a dict's repr
follows its key order. Rule params built from canonical values therefore stay the same when a
config is edited without changing what it means (keys reordered, defaults written out).
"""

from __future__ import annotations

from typing import Any, Mapping


def canonical(value: Any) -> Any:
    """`value` with the keys of every mapping in it sorted; lists keep their order (it is data)."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value
