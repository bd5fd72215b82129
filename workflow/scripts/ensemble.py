"""Snakemake adapter: MoDE's task-adaptive ensemble, the comparison and control arms and the claims
table (modeflow.ensemble.combine), from the saved logits and the saved routing weights
(workflow/scripts/ensemble_weights.py) only. On the demo, claim (a) takes each domain's expert
from the demo's ground truth (modeflow.demo.checks.domain_experts)."""
import json
from pathlib import Path

from modeflow.common.joblog import job_log
from modeflow.common.names import RANDOM_SPLIT, expert_of_model, is_expert_model
from modeflow.demo.checks import domain_experts
from modeflow.ensemble.combine import run_ensemble

params, inp = snakemake.params, snakemake.input
with job_log(snakemake.log[0]) as log:
    # experts by their cluster name ("00", ...), the other models (seed, dense, ...) as extra rows
    eval_dirs = {expert_of_model(model) if is_expert_model(model) else model: path
                 for model, path in params.eval_dirs.items()}
    own = None
    if "domain_experts" in inp.keys():
        owners = domain_experts(json.loads(Path(inp.domain_experts).read_text()))
        own = {d: owners[d] for d in params.domains if d in owners and d in params.tasks}  # config order
    if hasattr(params, "grown_owners"):  # an added expert should be the best expert on its own tasks
        own = {**(own or {}), **params.grown_owners}
    rows = run_ensemble(eval_dirs, list(params.tasks.values()), params.cluster, inp.routing,
                        Path(snakemake.output.summary_csv).parent,
                        groups={RANDOM_SPLIT: params.random_split} if params.random_split else None,
                        own_experts=own, resamples=params.resamples, seed=params.seed)
    log.info("ensemble: %d arm x task rows; summary in %s", len(rows), snakemake.output.summary_md)
    log.info("\n%s", Path(snakemake.output.summary_md).read_text())
