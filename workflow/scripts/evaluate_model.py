"""Snakemake adapter: evaluate one model on every task (modeflow.evaluate.zeroshot). The work happens in
params.work_dir (resumable: finished tasks are in its results.jsonl); the declared output directory
is a copy of it, with metrics.json, made when every task is done."""
import shutil
from pathlib import Path

from modeflow.common.atomic import atomic_dir, write_json
from modeflow.evaluate.results import reset_if_stale
from modeflow.evaluate.zeroshot import evaluate_model
from modeflow.common.joblog import job_log

params, model = snakemake.params, snakemake.wildcards.model
with job_log(snakemake.log[0]) as log:
    work = Path(params.work_dir)
    if reset_if_stale(work, params.model_name, snakemake.input.checkpoint):
        log.info("%s: cleared %s (results of another checkpoint)", model, work)
    rows = evaluate_model(params.model_name, snakemake.input.checkpoint, list(params.tasks.values()), work,
                          device=params.device, batch_size=params.batch_size, label=model)
    for row in rows:
        log.info("%s on %s (%s): %.4f", model, row["dataset"], row["kind"], row["headline"])
    with atomic_dir(snakemake.output[0]) as tmp:
        for name in params.tasks:
            shutil.copytree(work / name, tmp / name)
        shutil.copyfile(work / "results.jsonl", tmp / "results.jsonl")
        write_json(tmp / "metrics.json", {"model": model, "checkpoint": snakemake.input.checkpoint, "tasks": rows})
