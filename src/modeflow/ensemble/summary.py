"""The ensemble's tables: arms.jsonl (every arm's metrics on every task), summary.csv / summary.md
(one row per arm, each task's headline number and their average), and the html page the Snakemake
report shows (it shows .html report items as pages)."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.atomic import atomic_path
from modeflow.ensemble.arms import ORACLE

ARM = "arm"  # the first column of summary.csv


def summary_table(rows: Sequence[dict], task_names: Sequence[str]) -> list[dict]:
    """One dict per arm (first-seen order): arm, each task's headline, average (unweighted)."""
    arms: dict[str, dict] = {}
    for r in rows:
        arms.setdefault(r["arm"], {ARM: r["arm"]})[r["task"]] = r["headline"]
    for row in arms.values():
        row["average"] = float(np.mean([row[t] for t in task_names]))
    return list(arms.values())


def summary_markdown(table: Sequence[dict], experts: Sequence[str]) -> list[str]:
    cols = [c for c in table[0] if c != ARM]
    lines = [f"# MoDE ensemble ({len(experts)} experts)", "",
             "Headline per task: top-1 accuracy (classification), mean_recall@1 (retrieval), in %.",
             "", "| arm | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in table:
        name = "oracle (best single expert; not a method)" if row[ARM] == ORACLE else row[ARM]
        lines.append(f"| {name} | " + " | ".join(f"{100 * row[c]:.1f}" for c in cols) + " |")
    lines += ["", "mode: MoDE code weights; mode_paper: the paper's Eqs. 4-6; uniform: mean of the "
              "experts' logits; top1: only the highest-weight expert; oracle: the best single expert "
              "chosen per task with the test labels, an upper bound for picking one expert."]
    return lines


def write_tables(out_dir: str | Path, rows: Sequence[dict], task_names: Sequence[str],
                 experts: Sequence[str]) -> None:
    """arms.jsonl, summary.csv and summary.md of the combining step's rows, in out_dir."""
    out_dir = Path(out_dir)
    _write_lines(out_dir / "arms.jsonl", [json.dumps(r, sort_keys=True) for r in rows])
    table = summary_table(rows, task_names)
    _write_csv(out_dir / "summary.csv", table)
    _write_lines(out_dir / "summary.md", summary_markdown(table, experts))


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(line + "\n" for line in lines))


def _write_csv(path: Path, table: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    for row in table:
        writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def read_summary(summary_csv: str | Path) -> dict[str, dict[str, float]]:
    """{arm: {task or "average": headline metric}} from summary.csv."""
    with open(summary_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    arm_column = next(iter(rows[0])) if rows else ARM
    return {row[arm_column]: {k: float(v) for k, v in row.items() if k != arm_column and v not in ("", None)}
            for row in rows}


# --- html -------------------------------------------------------------------------------------

_STYLE = ("<style>table{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}"
          "td:first-child,th:first-child{text-align:left}</style>")


def summary_html(summary: Mapping[str, Mapping[str, float]], costs: Mapping[str, Mapping] | None = None,
                 title: str = "modeflow: every arm on every task") -> str:
    """The summary (read_summary's {arm: {column: value}}) with each arm's training cost appended."""
    if not summary:
        return f"<html><body><h3>{html.escape(title)}</h3><p>no rows</p></body></html>"
    costs = costs or {}
    columns = list(next(iter(summary.values())))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (ARM, *columns))
    head += "<th>samples seen</th><th>train FLOPs</th>"
    body = []
    for arm, values in summary.items():
        cost = costs.get(arm, {})
        cells = f"<td>{html.escape(arm)}</td>" + "".join(f"<td>{values[c]:.4f}</td>" for c in columns)
        cells += f"<td>{cost.get('samples_seen', '')}</td><td>{'%.3g' % cost['flops'] if 'flops' in cost else ''}</td>"
        body.append(f"<tr>{cells}</tr>")
    note = ("<p>Classification: top-1; retrieval: mean_recall@1. <i>oracle</i> picks the best single expert per "
            "task with the test labels (a reference, not a method). Costs include the seed model's.</p>")
    return (f"<html><head><meta charset='utf-8'>{_STYLE}</head><body><h3>{html.escape(title)}</h3>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>{note}</body></html>")
