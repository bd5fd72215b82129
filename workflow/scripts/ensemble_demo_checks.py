"""Snakemake adapter: what the demo's ground truth says about the experts and the ensemble
(modeflow.demo.checks) — reported with figures, pass or fail."""
import os

from modeflow.common.atomic import write_json
from modeflow.ensemble.saved_weights import WEIGHTS_JSON
from modeflow.demo.checks import load_and_check
from modeflow.common.joblog import job_log

inp = snakemake.input
with job_log(snakemake.log[0]) as log:
    checks = load_and_check(inp.summary_csv, os.path.join(inp.routing, WEIGHTS_JSON), inp.cluster_scores, snakemake.params.domains,
                            costs_json=inp.costs, arm=snakemake.params.arm)
    write_json(snakemake.output[0], checks)
    for key in ("each_expert_best_on_its_domain", "weights_pick_the_domain_expert", "mode_beats_uniform",
                "mode_beats_dense"):
        log.info("%s: %s", key, checks[key])
    log.info("averages: %s", checks["average"])
