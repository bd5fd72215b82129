"""Report figures for the evaluation and ensemble steps (read from their output files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_name
from modeflow.common.plots import png_figure
from modeflow.ensemble.arms import ORACLE
from modeflow.ensemble.saved_weights import read_weights_json
from modeflow.ensemble.summary import read_summary


def plot_weights_heatmap(weights_json: str | Path, png: str | Path, variant: str = "mode") -> None:
    """Tasks x experts heatmap of the ensemble weights (retrieval: mean over captions), annotated."""
    weights = read_weights_json(weights_json)
    if not weights:
        raise InputDataError(f"{weights_json}: no tasks")
    tasks = list(weights)
    experts = weights[tasks[0]].get("experts") or [expert_name(i) for i in range(len(weights[tasks[0]][variant]))]
    grid = np.array([weights[t][variant] for t in tasks])
    with png_figure(png, (1.6 + 0.9 * len(experts), 1.2 + 0.45 * len(tasks))) as fig:
        ax = fig.add_subplot()
        image = ax.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(experts)), [f"expert {e}" for e in experts])
        ax.set_yticks(range(len(tasks)), tasks)
        for (row, col), value in np.ndenumerate(grid):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center",
                    color="black" if value > 0.6 else "white", fontsize=8)
        formula = (weights[tasks[0]].get("arms") or {}).get(variant)
        ax.set_title(f"MoDE ensemble weights ({variant}{': ' + formula if formula else ''})")
        fig.colorbar(image, ax=ax, shrink=0.8)


def _read_summary(summary_csv: str | Path) -> tuple[list[str], list[str], np.ndarray]:
    summary = read_summary(summary_csv)
    if not summary:
        raise InputDataError(f"{summary_csv}: no arms")
    columns = list(next(iter(summary.values())))
    return list(summary), columns, np.array([[row[c] for c in columns] for row in summary.values()])


def plot_accuracy_bars(summary_csv: str | Path, png: str | Path) -> None:
    """Grouped bars: one group per task (and the average), one bar per arm; the oracle is hatched
    and labelled as such, since it picks the expert with the test labels."""
    arms, columns, values = _read_summary(summary_csv)
    width = 0.8 / len(arms)
    with png_figure(png, (2.0 + 0.5 * len(columns) * len(arms) ** 0.5 * 1.6, 4.0)) as fig:
        ax = fig.add_subplot()
        x = np.arange(len(columns))
        colors = [f"C{i % 10}" for i in range(len(arms))]
        for i, arm in enumerate(arms):
            oracle = arm == ORACLE
            ax.bar(x + (i - (len(arms) - 1) / 2) * width, 100 * values[i], width,
                   label="oracle (best single expert, not a method)" if oracle else arm,
                   color="white" if oracle else colors[i], edgecolor="gray" if oracle else colors[i],
                   hatch="//" if oracle else None)
        ax.set_xticks(x, columns)
        ax.set_ylabel("top-1 / mean recall@1 (%)")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7, ncols=2, loc="upper left")
        ax.set_title("zero-shot results per arm")


def plot_training_curves(meta_jsons: Sequence[str | Path] | Mapping[str, str | Path],
                         png: str | Path) -> None:
    """Loss vs samples seen, one line per model, from each training meta json's `curve`
    (a list of {samples, loss, lr}). Labels: the mapping's keys, else the json's `name`/`model`,
    else the file name."""
    items = meta_jsons.items() if isinstance(meta_jsons, Mapping) else [(None, p) for p in meta_jsons]
    with png_figure(png, (6.0, 4.0)) as fig:
        ax = fig.add_subplot()
        for label, path in items:
            meta = json.loads(Path(path).read_text())
            curve = meta.get("curve")
            if not isinstance(curve, list):
                raise InputDataError(f"{path}: no `curve` list in the training meta json")
            try:
                samples = [float(p["samples"]) for p in curve]
                loss = [float(p["loss"]) for p in curve]
            except (KeyError, TypeError, ValueError):
                raise InputDataError(f"{path}: every `curve` entry needs numeric samples and loss") from None
            ax.plot(samples, loss, marker=".", label=label or meta.get("name") or meta.get("model")
                    or Path(path).stem)
        ax.set_xlabel("samples seen")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=8)
        ax.set_title("training curves")
