"""Report of the filter stage: the per-subset summary and its funnel plot."""

from __future__ import annotations

import json
from typing import Mapping

from modeflow.common.plots import png_figure


def summarize(stats_paths: Mapping[str, str], use: str) -> dict:
    subsets = {name: json.loads(open(p).read()) for name, p in stats_paths.items()}
    return {"use": use, "rows_used": subsets[use]["rows_kept"], "subsets": subsets}


_OPS = {"intersection": "∩ ", "difference": "− "}  # set kinds remove by combining with a subset


def plot_funnel(summary: dict, out_png: str) -> None:
    """Rows kept by each subset, and for the pool filters the rows each rule removes."""
    subsets = summary["subsets"]
    rules = [(f"{name}: {_OPS.get(s['kind'], '')}{rule}", n)
             for name, s in subsets.items() for rule, n in s["removed_by_rule"].items()]
    with png_figure(out_png, (11, 0.4 * max(len(subsets), len(rules), 4) + 1.5)) as fig:
        _funnel_axes(fig.subplots(1, 2), summary, rules)


def _funnel_axes(axes, summary: dict, rules: list) -> None:
    subsets = summary["subsets"]
    names = sorted(subsets, key=lambda n: -subsets[n]["rows_kept"])  # widest first, like a funnel
    axes[0].barh(names, [subsets[n]["rows_kept"] for n in names],
                 color=["tab:green" if n == summary["use"] else "tab:blue" for n in names])
    axes[0].set_title(f"rows kept (green: filter.use = {summary['use']})")
    axes[0].invert_yaxis()
    if rules:
        axes[1].barh([r for r, _ in rules], [n for _, n in rules], color="tab:red")
        axes[1].invert_yaxis()
    axes[1].set_title("rows removed per rule (each counted alone)")
