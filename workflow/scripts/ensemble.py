"""Snakemake adapter: MoDE's task-adaptive ensemble and the comparison arms (modeflow.ensemble.combine),
from the saved logits and the saved routing weights (workflow/scripts/ensemble_weights.py) only."""
from pathlib import Path

from modeflow.ensemble.combine import run_ensemble
from modeflow.common.joblog import job_log
from modeflow.common.names import expert_of_model, is_expert_model

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    # experts by their cluster name ("00", ...), the other models (seed, dense) as extra rows
    eval_dirs = {expert_of_model(model) if is_expert_model(model) else model: path
                 for model, path in params.eval_dirs.items()}
    rows = run_ensemble(eval_dirs, list(params.tasks.values()), params.cluster, snakemake.input.routing,
                        Path(snakemake.output.summary_csv).parent)
    log.info("ensemble: %d arm x task rows; summary in %s", len(rows), snakemake.output.summary_md)
    log.info("\n%s", Path(snakemake.output.summary_md).read_text())
