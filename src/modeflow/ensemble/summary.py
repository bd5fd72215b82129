"""The ensemble's tables: arms.jsonl (every arm's metrics on every task), summary.csv / summary.md
(one row per arm, each task's headline number and their average, then the claims table),
claims.csv / claims.json (modeflow.ensemble.claims), and the html page the Snakemake report shows
(it shows .html report items as pages): the summary with every arm's cost, and the claims."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.atomic import atomic_path, write_json
from modeflow.common.errors import InputDataError
from modeflow.common.names import DENSE_1X_MODEL, DENSE_MODEL, RANDOM_SPLIT
from modeflow.ensemble.arms import ORACLE
from modeflow.ensemble.claims import claims_csv_rows, claims_markdown
from modeflow.evaluate.main_metric import DEFAULT, main_metric_note

ARM = "arm"  # the first column of summary.csv
PER_SAMPLE = "per_sample"  # the arms' per-query hits, under the ensemble's directory
CLAIMS_JSON, CLAIMS_CSV = "claims.json", "claims.csv"
# how the tables name the arms whose names say little on their own
ARM_LABELS = {ORACLE: "oracle (best single expert; not a method)", DENSE_MODEL: "dense (equal compute)",
              DENSE_1X_MODEL: "dense_1x (1x: the seed to the end of the schedule)",
              RANDOM_SPLIT: "random_split (uniform over experts on a random split)"}


def summary_table(rows: Sequence[dict], task_names: Sequence[str]) -> list[dict]:
    """One dict per arm (first-seen order): arm, each task's headline, average (unweighted)."""
    arms: dict[str, dict] = {}
    for r in rows:
        arms.setdefault(r["arm"], {ARM: r["arm"]})[r["task"]] = r["headline"]
    for row in arms.values():
        row["average"] = float(np.mean([row[t] for t in task_names]))
    return list(arms.values())


def task_metric_notes(rows: Sequence[dict], task_names: Sequence[str]) -> list[str]:
    """One line per task naming the main metric its rows were scored by (rows without one: the
    kind's default)."""
    first = {}
    for r in rows:
        first.setdefault(r["task"], r)
    return [main_metric_note(t, first[t].get("main_metric") or DEFAULT[first[t]["kind"]]) for t in task_names
            if t in first]


def summary_markdown(table: Sequence[dict], experts: Sequence[str], mode_formula: str = "code",
                     metric_notes: Sequence[str] = ()) -> list[str]:
    """summary.md's table; `metric_notes`: a line per task naming its main metric (task_metric_notes)."""
    cols = [c for c in table[0] if c != ARM]
    lines = [f"# MoDE ensemble ({len(experts)} experts)", "",
             "Each task is scored by its main metric, in %; the average is over the tasks' main metrics:", "",
             *(f"- {note}" for note in metric_notes),
             "", "| arm | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in table:
        lines.append(f"| {ARM_LABELS.get(row[ARM], row[ARM])} | " + " | ".join(f"{100 * row[c]:.1f}" for c in cols) + " |")
    other = "paper's Eqs. 4-6" if mode_formula == "code" else "code's weights"
    lines += ["", f"mode: MoDE with the {'code' if mode_formula == 'code' else 'paper'}'s weights "
              f"(ensemble.weights); mode_{'paper' if mode_formula == 'code' else 'code'}: the {other}; "
              "mode_sharp: the code's scores with the softmax temperature ensemble.sharp_temperature; "
              "uniform: mean of the experts' logits; top1: only the highest-weight expert; oracle: the best "
              "single expert chosen per task with the test labels, an upper bound for picking one expert; "
              "dense: the seed continued for the experts' total compute; dense_1x: the seed trained to the "
              "end of the schedule; random_split: experts trained as MoDE's on a random partition with "
              "the clusters' sizes, averaged uniformly."]
    return lines


def write_tables(out_dir: str | Path, rows: Sequence[dict], task_names: Sequence[str],
                 experts: Sequence[str], claims: Sequence[dict] | None = None,
                 mode_formula: str = "code", metric_notes: Sequence[str] | None = None) -> None:
    """arms.jsonl, summary.csv and summary.md of the combining step's rows, in out_dir; with
    `claims` (modeflow.ensemble.claims rows), claims.json, claims.csv and their section of summary.md.
    metric_notes: summary.md's line per task on its main metric (None: task_metric_notes of the rows)."""
    out_dir = Path(out_dir)
    _write_lines(out_dir / "arms.jsonl", [json.dumps(r, sort_keys=True) for r in rows])
    table = summary_table(rows, task_names)
    _write_csv(out_dir / "summary.csv", table)
    notes = task_metric_notes(rows, task_names) if metric_notes is None else metric_notes
    lines = summary_markdown(table, experts, mode_formula, notes)
    if claims is not None:
        write_json(out_dir / CLAIMS_JSON, list(claims))
        _write_csv(out_dir / CLAIMS_CSV, claims_csv_rows(claims))
        lines += [""] + claims_markdown(claims)
    _write_lines(out_dir / "summary.md", lines)


def read_claims(claims_json: str | Path) -> list[dict]:
    try:
        return json.loads(Path(claims_json).read_text())
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the claims table {claims_json}: {exc}") from None


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
                 title: str = "modeflow: every arm on every task", claims: Sequence[Mapping] | None = None) -> str:
    """The summary (read_summary's {arm: {column: value}}) with each arm's cost appended (training
    samples seen and FLOPs, model forward passes per test input), then the claims table."""
    if not summary:
        return f"<html><body><h3>{html.escape(title)}</h3><p>no rows</p></body></html>"
    costs = costs or {}
    columns = list(next(iter(summary.values())))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in (ARM, *columns))
    head += "<th>samples seen</th><th>train FLOPs</th><th>forward passes per input</th>"
    body = []
    for arm, values in summary.items():
        cost = costs.get(arm, {})
        cells = f"<td>{html.escape(ARM_LABELS.get(arm, arm))}</td>" + "".join(f"<td>{values[c]:.4f}</td>" for c in columns)
        cells += (f"<td>{cost.get('samples_seen', '')}</td><td>{'%.3g' % cost['flops'] if 'flops' in cost else ''}</td>"
                  f"<td>{cost.get('forward_passes', '')}</td>")
        body.append(f"<tr>{cells}</tr>")
    note = ("<p>Each task's main metric (summary.md names it per task; by default top-1 for classification, "
            "mean_recall@1 for retrieval). <i>oracle</i> picks the best single expert per "
            "task with the test labels (a reference, not a method). Training costs include the seed model's; "
            "forward passes: the models an arm runs on each test input.</p>")
    return (f"<html><head><meta charset='utf-8'>{_STYLE}</head><body><h3>{html.escape(title)}</h3>"
            f"<table><tr>{head}</tr>{''.join(body)}</table>{note}{claims_html(claims or [])}</body></html>")


def claims_html(claims: Sequence[Mapping]) -> str:
    """The claims table (modeflow.ensemble.claims rows) as html, differences in points."""
    if not claims:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("claim", "statement", "difference (points)", "95% CI", "verdict", "note"))
    body = []
    for r in claims:
        ci = "" if r["ci_low"] is None else f"[{100 * r['ci_low']:+.1f}, {100 * r['ci_high']:+.1f}]"
        diff = "" if r["difference"] is None else f"{100 * r['difference']:+.1f}"
        body.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in
                                     (f"({r['claim']})", r["statement"], diff, ci, r["verdict"], r.get("note") or ""))
                    + "</tr>")
    return (f"<h3>Claims</h3><table><tr>{head}</tr>{''.join(body)}</table><p>95% paired bootstrap intervals over "
            f"the test samples ({claims[0]['resamples']} resamples, seed {claims[0]['seed']}; retrieval resamples "
            "queries). holds: the interval is above 0; reversed: below 0; not shown: it contains 0.</p>")
