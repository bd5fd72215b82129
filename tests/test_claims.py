"""The claims table (modeflow.ensemble.claims) and the per-query hits it resamples
(modeflow.ensemble.per_sample): intervals on constructed arms, the verdict logic, the pairing,
the oracle picked per resample, and hits that reproduce the headline metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeflow.ensemble.claims import (HOLDS, NOT_AVAILABLE, NOT_SHOWN, REVERSED, Claim, claims_csv_rows,
                                      claims_markdown, evaluate_claims, resampled_headlines, standard_claims,
                                      verdict)
from modeflow.ensemble.per_sample import headline_from_hits, load_hits, sample_hits, save_hits
from modeflow.evaluate.metrics import headline, metrics_from_logits, retrieval_metrics


def _claim(a="A", b="B", tasks=("t",)):
    return Claim("x", "A > B", {t: (a,) for t in tasks}, {t: (b,) for t in tasks}, labels=(a, b))


def _correct(n, p, rng):
    return rng.random(n) < p


def test_verdict_logic():
    assert verdict(0.01, 0.03) == HOLDS
    assert verdict(-0.03, -0.001) == REVERSED
    assert verdict(-0.01, 0.02) == NOT_SHOWN
    assert verdict(0.0, 0.0) == NOT_SHOWN  # two identical arms
    assert verdict(0.0, 0.01) == NOT_SHOWN and verdict(-0.01, 0.0) == NOT_SHOWN  # touching 0 is not excluding it


def test_identical_arms_give_an_interval_around_zero():
    rng = np.random.default_rng(0)
    same = {"correct": _correct(500, 0.6, rng)}
    hits = {"t": {"A": same, "B": dict(same)}}
    [row] = evaluate_claims([_claim()], hits, resamples=300, seed=0)
    assert row["difference"] == 0.0 and row["ci_low"] <= 0.0 <= row["ci_high"]
    assert row["verdict"] == NOT_SHOWN


def test_interval_is_tight_around_the_true_difference():
    """A is B with 8% of the samples flipped from wrong to right (a true difference of about +8
    points on 5000 samples): the paired interval holds the measured difference, is narrow and
    excludes 0; swapped, the claim is reversed."""
    rng = np.random.default_rng(1)
    b = _correct(5000, 0.5, rng)
    a = b.copy()
    a[np.flatnonzero(~b)[:400]] = True  # +400 / 5000 = +0.08
    hits = {"t": {"A": {"correct": a}, "B": {"correct": b}}}
    [row] = evaluate_claims([_claim()], hits, resamples=500, seed=0)
    assert row["difference"] == pytest.approx(0.08)
    assert row["ci_low"] < 0.08 < row["ci_high"] and row["ci_high"] - row["ci_low"] < 0.02
    assert row["verdict"] == HOLDS
    [swapped] = evaluate_claims([_claim("B", "A")], hits, resamples=500, seed=0)
    assert swapped["verdict"] == REVERSED and swapped["difference"] == pytest.approx(-0.08)
    assert swapped["ci_low"] == pytest.approx(-row["ci_high"]) and swapped["ci_high"] == pytest.approx(-row["ci_low"])


def test_the_resample_is_paired():
    """Two arms that agree on all but 10 of 2000 samples: paired resampling sees a difference of
    0.5 points with an interval about 4·√10/2000 ≈ 0.006 wide; resampling each arm on its own would
    give one about 4·√(2 · 0.25 / 2000) ≈ 0.06 wide, and contain 0."""
    rng = np.random.default_rng(2)
    b = _correct(2000, 0.5, rng)
    a = b.copy()
    a[np.flatnonzero(~b)[:10]] = True
    [row] = evaluate_claims([_claim()], {"t": {"A": {"correct": a}, "B": {"correct": b}}}, resamples=400, seed=0)
    assert row["difference"] == pytest.approx(0.005)
    assert 0 < row["ci_low"] and row["ci_high"] - row["ci_low"] < 0.01
    boot = resampled_headlines({"A": {"correct": a}, "B": {"correct": b}}, "t", ["A", "B"], 400, 0)
    assert np.all(boot["A"] >= boot["B"])  # same indices: A is never below B on any resample


def test_task_average_and_retrieval_queries():
    """A claim over a classification and a retrieval task: the difference of the two-task averages;
    retrieval's headline is ½(text queries + image queries), each resampled on its own."""
    rng = np.random.default_rng(3)
    hits = {"cls": {"A": {"correct": _correct(300, 0.7, rng)}, "B": {"correct": _correct(300, 0.5, rng)}},
            "ret": {"A": {"text_queries": _correct(80, 0.4, rng), "image_queries": _correct(40, 0.6, rng)},
                    "B": {"text_queries": _correct(80, 0.4, rng), "image_queries": _correct(40, 0.2, rng)}}}
    expect = np.mean([headline_from_hits(hits[t]["A"]) - headline_from_hits(hits[t]["B"]) for t in hits])
    [row] = evaluate_claims([_claim(tasks=("cls", "ret"))], hits, resamples=200, seed=0)
    assert row["difference"] == pytest.approx(expect) and row["tasks"] == ["cls", "ret"]
    assert row["ci_low"] < expect < row["ci_high"]
    with pytest.raises(ValueError, match="arm 'B' has"):
        resampled_headlines({"A": {"correct": np.ones(5, bool)}, "B": {"correct": np.ones(6, bool)}}, "t",
                            ["A", "B"], 10, 0)


def test_seeded_and_independent_of_the_other_tasks():
    rng = np.random.default_rng(4)
    hits = {t: {"A": {"correct": _correct(200, 0.6, rng)}, "B": {"correct": _correct(200, 0.5, rng)}} for t in "pq"}
    one = evaluate_claims([_claim(tasks=("p",))], hits, resamples=100, seed=0)
    again = evaluate_claims([_claim(tasks=("p",)), _claim(tasks=("p", "q"))], hits, resamples=100, seed=0)
    assert one[0] == again[0]  # another claim, another task: this claim's interval is unchanged
    other = evaluate_claims([_claim(tasks=("p",))], hits, resamples=100, seed=1)
    assert other[0]["difference"] == one[0]["difference"] and other[0]["ci_low"] != one[0]["ci_low"]


def test_the_oracle_is_picked_on_every_resample():
    """MoDE vs the oracle (best of two experts per task): the point estimate is the best expert's
    score, and on each resample the better of the two on that resample."""
    rng = np.random.default_rng(5)
    e0, e1 = _correct(400, 0.55, rng), _correct(400, 0.55, rng)
    mode = e0 | e1  # better than either
    hits = {"t": {"mode": {"correct": mode}, "expert_00": {"correct": e0}, "expert_01": {"correct": e1}}}
    claims = [c for c in standard_claims(["t"], ["00", "01"]) if c.key == "e"]
    [row] = evaluate_claims(claims, hits, resamples=200, seed=0)
    assert row["difference"] == pytest.approx(mode.mean() - max(e0.mean(), e1.mean()))
    boot = resampled_headlines(hits["t"], "t", ["mode", "expert_00", "expert_01"], 200, 0)
    oracle = np.maximum(boot["expert_00"], boot["expert_01"])
    assert row["ci_low"] == pytest.approx(np.percentile(boot["mode"] - oracle, 2.5))
    assert row["verdict"] == HOLDS


def test_standard_claims_and_missing_arms():
    claims = {c.key: c for c in standard_claims(["shapes", "digits", "mixed"], ["00", "01"],
                                                own_experts={"shapes": "01", "digits": "00"}, sharp_temperature=0.5)}
    assert list(claims) == ["a", "a:shapes", "a:digits", "b", "c", "d", "e", "f", "g"]
    assert claims["a:shapes"].side == {"shapes": ("expert_01",)} and claims["a:shapes"].versus == {"shapes": ("expert_00",)}
    assert claims["a"].side == {"shapes": ("expert_01",), "digits": ("expert_00",)}
    assert claims["b"].versus == {t: ("random_split",) for t in ("shapes", "digits", "mixed")}
    assert claims["e"].versus["mixed"] == ("expert_00", "expert_01")
    assert "g" not in {c.key for c in standard_claims(["t"], ["00", "01"])}  # no sharp arm, no claim (g)
    rng = np.random.default_rng(6)
    hits = {"t": {arm: {"correct": _correct(50, 0.5, rng)} for arm in ("mode", "uniform", "expert_00", "expert_01")}}
    rows = {r["claim"]: r for r in evaluate_claims(standard_claims(["t"], ["00", "01"]), hits, resamples=50, seed=0)}
    assert rows["b"]["verdict"] == NOT_AVAILABLE and rows["b"]["note"] == "not run: random_split"
    assert rows["b"]["difference"] is None and rows["f"]["verdict"] != NOT_AVAILABLE


def test_claim_a_notes_its_domains():
    rng = np.random.default_rng(7)
    hits = {t: {"expert_00": {"correct": _correct(300, 0.9 if t == "p" else 0.1, rng)},
                "expert_01": {"correct": _correct(300, 0.5, rng)}} for t in "pq"}
    rows = {r["claim"]: r for r in evaluate_claims(standard_claims(["p", "q"], ["00", "01"], {"p": "00", "q": "00"})[:3],
                                                   hits, resamples=100, seed=0)}
    assert rows["a:p"]["verdict"] == HOLDS and rows["a:q"]["verdict"] == REVERSED
    assert rows["a"]["note"] == "per domain task: holds on 1 of 2, reversed on 1"


def test_hits_reproduce_the_headline_metrics():
    rng = np.random.default_rng(8)
    logits, labels = rng.random((60, 5)), rng.integers(0, 5, 60)
    hits = sample_hits("classification", logits, labels)
    assert headline_from_hits(hits) == headline("classification", metrics_from_logits(logits, labels))
    sim = rng.random((10, 25))
    sim[:, 3] = sim[:, 4]  # a tie: the lower index wins, as in the metrics
    t2i = np.array([i % 8 for i in range(25)])  # images 8, 9 have no text
    hits = sample_hits("retrieval", sim, t2i)
    assert len(hits["text_queries"]) == 25 and len(hits["image_queries"]) == 8
    metrics = retrieval_metrics(sim, t2i)
    assert hits["text_queries"].mean() == metrics["image_retrieval_recall@1"]
    assert hits["image_queries"].mean() == metrics["text_retrieval_recall@1"]
    assert headline_from_hits(hits) == pytest.approx(headline("retrieval", metrics))


def test_hits_round_trip(tmp_path):
    hits = {"cls": {"mode": {"correct": np.array([True, False])}},
            "ret": {"mode": {"text_queries": np.array([True]), "image_queries": np.array([False, True])}}}
    save_hits(tmp_path, hits)
    back = load_hits(tmp_path, {"cls": "classification", "ret": "retrieval"})
    assert {t: {a: {k: v.tolist() for k, v in d.items()} for a, d in arms.items()} for t, arms in back.items()} == \
        {t: {a: {k: v.tolist() for k, v in d.items()} for a, d in arms.items()} for t, arms in hits.items()}
    with pytest.raises(Exception, match="no per-sample hits saved for task 'other'"):
        load_hits(tmp_path, {"other": "classification"})


def test_tables():
    rows = [{"claim": "b", "statement": "MoDE > random split", "arm": "mode", "versus": "random_split",
             "difference": 0.0123, "ci_low": -0.004, "ci_high": 0.03, "verdict": NOT_SHOWN, "tasks": ["a", "b"],
             "resamples": 1000, "seed": 0, "note": ""},
            {"claim": "c", "statement": "MoDE > dense 1x", "arm": "mode", "versus": "dense_1x", "difference": None,
             "ci_low": None, "ci_high": None, "verdict": NOT_AVAILABLE, "tasks": ["a", "b"], "resamples": 1000,
             "seed": 0, "note": "not run: dense_1x"}]
    text = "\n".join(claims_markdown(rows))
    assert "| (b) | MoDE > random split | +1.2 | [-0.4, +3.0] | not shown |" in text
    assert "| (c) | MoDE > dense 1x |  |  | n/a (not run: dense_1x) |" in text
    assert claims_csv_rows(rows)[0]["tasks"] == "a b"


# --- the sweep and the scale point --------------------------------------------------------------


def test_sweep_grid_and_configs():
    from modeflow.ensemble.sweep import parse_grid, point_name, with_values

    grid = parse_grid(["train.seed_epochs=4,6", "ensemble.sharp_temperature=0.5,null"])
    assert grid == [{"train.seed_epochs": 4, "ensemble.sharp_temperature": 0.5},
                    {"train.seed_epochs": 4, "ensemble.sharp_temperature": None},
                    {"train.seed_epochs": 6, "ensemble.sharp_temperature": 0.5},
                    {"train.seed_epochs": 6, "ensemble.sharp_temperature": None}]
    assert point_name(grid[1]) == "train.seed_epochs=4_ensemble.sharp_temperature=None"
    base = {"train": {"preset": "demo"}}
    assert with_values(base, grid[0]) == {"train": {"preset": "demo", "seed_epochs": 4},
                                          "ensemble": {"sharp_temperature": 0.5}}
    assert base == {"train": {"preset": "demo"}}  # a copy
    with pytest.raises(Exception, match="KEY=V1,V2"):
        parse_grid(["train.seed_epochs"])


def test_sweep_runs_each_point_in_its_directory_and_tabulates(tmp_path):
    """The sweep with a stand-in for snakemake that writes a claims.json per point."""
    import json
    import subprocess

    import yaml

    from modeflow.ensemble.sweep import parse_grid, run_point, point_claims, write_sweep

    def fake_snakemake(cmd, **_):
        workdir = Path(cmd[cmd.index("--directory") + 1])
        seed_epochs = yaml.safe_load((workdir / "config.yaml").read_text())["train"]["seed_epochs"]
        (workdir / "results" / "ensemble").mkdir(parents=True)
        row = {"claim": "b", "statement": "MoDE > random split", "difference": seed_epochs / 100,
               "ci_low": -0.01, "ci_high": 0.05, "verdict": NOT_SHOWN}
        (workdir / "results" / "ensemble" / "claims.json").write_text(json.dumps([row]))
        return subprocess.CompletedProcess(cmd, 0)

    points = parse_grid(["train.seed_epochs=2,4"])
    dirs = [run_point({"train": {"preset": "demo"}}, p, tmp_path, cores=2, snakefile=Path("Snakefile"),
                      runner=fake_snakemake) for p in points]
    assert [d.name for d in dirs] == ["train.seed_epochs=2", "train.seed_epochs=4"]
    write_sweep(tmp_path, points, [point_claims(d) for d in dirs])
    table = (tmp_path / "sweep.md").read_text()
    assert "| train.seed_epochs | (b) |" in table
    assert "| 2 | +2.0 [-1.0, +5.0] not shown |" in table and "| 4 | +4.0 [-1.0, +5.0] not shown |" in table
    assert (tmp_path / "sweep.csv").read_text().splitlines()[1].startswith("2,b,0.02,")


def test_a_sweep_point_can_start_from_a_finished_run(tmp_path):
    """--start-from: a new point's directory is a copy of the run (mtimes kept, so Snakemake finds
    its outputs up to date) without the run's locks, logs and marks of running jobs."""
    import os

    from modeflow.common.errors import ConfigError
    from modeflow.ensemble.sweep import copy_finished_run

    run = tmp_path / "run"
    for rel in ("results/models/seed.pt", ".snakemake/metadata/abc", ".snakemake/locks/0.input.lock",
                ".snakemake/incomplete/xyz", ".snakemake/log/x.log"):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(rel)
    os.utime(run / "results/models/seed.pt", (1_000_000, 1_000_000))
    copy_finished_run(run, tmp_path / "point")
    point = tmp_path / "point"
    assert (point / "results/models/seed.pt").stat().st_mtime == 1_000_000
    assert (point / ".snakemake/metadata/abc").read_text() == ".snakemake/metadata/abc"
    assert not any((point / ".snakemake" / d).exists() for d in ("locks", "incomplete", "log"))
    with pytest.raises(ConfigError, match="not a finished run"):
        copy_finished_run(tmp_path / "point" / "results", tmp_path / "other")


def test_scale_point_sizes():
    from modeflow.ensemble.scale_point import SIZES, hardware_line, scale_config
    from modeflow.train.recipe import train_flops_per_sample

    base = {"pool": {"demo": {"num_samples": 12000}}, "train": {"preset": "demo"}}
    gpu = scale_config(base, "gpu")
    assert gpu["pool"]["demo"]["num_samples"] == 10 * 12000 and gpu["train"]["gpus"] == 1
    assert train_flops_per_sample(gpu["train"]["model"]) > 5 * train_flops_per_sample("modeflow-tiny-resnet")
    assert scale_config(base, "demo") == base and set(SIZES) == {"tiny", "demo", "gpu"}
    assert hardware_line({"gpus": [{"name": "H", "memory_gib": 80.0}], "cpu": "C", "cpu_cores": 8}) == \
        "H (80.0 GiB); CPU: C (8 cores)"


@pytest.mark.e2e
def test_gpu_scale_point_plans_its_dag(tmp_path, repo):
    """The GPU-size config resolves and plans the whole DAG with the control arms (a dry run: this
    machine has no GPU to run it); the report says it was not run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, str(repo / "tools" / "gpu_scale_point.py"), "--size", "gpu",
                           "--out", str(tmp_path), "--cores", "2", "--dry-run"], capture_output=True, text=True,
                          timeout=600)
    log = (tmp_path / "snakemake.log").read_text()
    assert proc.returncode == 0, log[-3000:]
    for rule in ("random_split", "reshard_random_expert", "ensemble", "results_report"):
        assert rule in log
    import re

    assert re.search(r"^train\s+11$", log, re.M) and re.search(r"^evaluate\s+11$", log, re.M)
    report = (tmp_path / "scale_point.md").read_text()
    assert report.startswith("# Scale point: gpu") and "Hardware:" in report and "no claims table" in report
