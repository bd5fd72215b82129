"""Report figures: matplotlib on the Agg canvas (no pyplot global state), saved atomically."""

from __future__ import annotations

import contextlib
from typing import Iterator

from modeflow.common.atomic import atomic_path


@contextlib.contextmanager
def png_figure(png_path, figsize) -> Iterator:
    """Yield a Figure; if the block succeeds, save it to png_path (temp name, then rename)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    yield fig
    with atomic_path(png_path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
