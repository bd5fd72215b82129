"""L2 normalisation of embedding rows, the one used by clustering, evaluation and routing.

Norms are np.linalg.norm's own arithmetic (square root of the summed squares, in the rows' dtype),
so every caller gets the same bits for the same rows whichever output mode it uses.
"""

from __future__ import annotations

import numpy as np

from modeflow.common.errors import InputDataError

ZERO_NORM_FLOOR = 1e-12  # the eps of torch.nn.functional.normalize, which open_clip's features use


def normalize_rows(x: np.ndarray, out: np.ndarray | None = None, *, dtype=None, allow_zero: bool = False,
                   source: str = "embeddings", first_row: int = 0) -> np.ndarray:
    """Rows of `x` (its last axis) divided by their L2 norms.

    out: None -> a new array; `x` itself -> in place; another array of x's shape -> written there,
    with `out` first holding the squares, so that no temporary as big as `x` is allocated (assign
    normalises every batch into one reused buffer).
    dtype: cast `x` to it first (routing computes in float64); default: x's own dtype.
    A zero or non-finite row is bad input (InputDataError naming `source` and the row, counted
    from `first_row`), unless allow_zero: then norms are floored at ZERO_NORM_FLOOR, so that a zero
    row stays zero and a non-finite one gives NaN, as torch's F.normalize does.
    """
    x = np.asarray(x, dtype=dtype)
    if out is None or np.shares_memory(x, out):
        norms = np.linalg.norm(x, axis=-1, keepdims=True)
    else:
        np.multiply(x, x, out=out)
        norms = np.sqrt(np.add.reduce(out, axis=-1, keepdims=True))
    if allow_zero:
        norms = np.maximum(norms, ZERO_NORM_FLOOR)
    else:
        _check_norms(norms[..., 0], source, first_row)
    return np.divide(x, norms, out=out)


def _check_norms(norms: np.ndarray, source: str, first_row: int) -> None:
    bad = ~np.isfinite(norms) | (norms == 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + first_row
        raise InputDataError(f"{source}: row {row} is a zero or non-finite embedding")
