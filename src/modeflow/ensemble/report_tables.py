"""HTML tables for the Snakemake report (it shows .html report items as pages)."""

from __future__ import annotations

import html
from typing import Mapping, Sequence

_STYLE = ("<style>table{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
          "td:first-child,th:first-child{text-align:left}</style>")


def _cell(value) -> str:
    try:
        return f"{float(value):.4f}"
    except (TypeError, ValueError):
        return html.escape(str(value))


def summary_html(rows: Sequence[Mapping[str, str]], costs: Mapping[str, Mapping] | None = None,
                 title: str = "modeflow: every arm on every task") -> str:
    """The ensemble summary (one row per arm) with each arm's training cost appended."""
    if not rows:
        return f"<html><body><h3>{html.escape(title)}</h3><p>no rows</p></body></html>"
    costs = costs or {}
    columns = list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns) + "<th>samples seen</th><th>train FLOPs</th>"
    body = []
    for row in rows:
        arm = row[columns[0]]
        cost = costs.get(arm, {})
        cells = "".join(f"<td>{_cell(row[c]) if i else html.escape(arm)}</td>" for i, c in enumerate(columns))
        cells += f"<td>{cost.get('samples_seen', '')}</td><td>{'%.3g' % cost['flops'] if 'flops' in cost else ''}</td>"
        body.append(f"<tr>{cells}</tr>")
    note = ("<p>Classification: top-1; retrieval: mean_recall@1. <i>oracle</i> picks the best single expert per "
            "task with the test labels (a reference, not a method). Costs include the seed model's.</p>")
    return (f"<html><head><meta charset='utf-8'>{_STYLE}</head><body><h3>{html.escape(title)}</h3>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>{note}</body></html>")
