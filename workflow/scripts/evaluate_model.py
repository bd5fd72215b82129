"""Snakemake adapter: evaluate one model on every task (modeflow.evaluate); per-task logits and a
jsonl that a rerun resumes from live in eval/<model>/, metrics.json marks the model done."""
from modeflow.atomic import write_json
from modeflow.evaluate import evaluate_model
from modeflow.joblog import job_log

params, model = snakemake.params, snakemake.wildcards.model
with job_log(snakemake.log[0]) as log:
    rows = evaluate_model(params.model_name, snakemake.input.checkpoint, list(params.tasks.values()),
                          params.out_dir, device=params.device, batch_size=params.batch_size, label=model)
    for row in rows:
        log.info("%s on %s (%s): %.4f", model, row["dataset"], row["kind"], row["headline"])
    write_json(snakemake.output.metrics, {"model": model, "checkpoint": snakemake.input.checkpoint, "tasks": rows})
