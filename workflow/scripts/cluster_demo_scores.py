"""Snakemake adapter: experts vs the demo's ground-truth domains (purity, NMI, contingency)."""
from modeflow.common.atomic import write_json
from modeflow.demo.score_cluster import plot_expert_scores, score_experts
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    scores = score_experts(snakemake.input.assign, snakemake.params.ground_truth,
                           snakemake.params.num_experts)
    log.info("demo scores: purity %s, NMI %s", scores["purity"], scores["nmi"])
    write_json(snakemake.output.scores, scores)
    plot_expert_scores(scores, snakemake.output.plot)
