"""Snakemake adapter: score the subsets against the demo pool's ground truth (modeflow.demo.score_filter)."""
from modeflow.common.atomic import write_json
from modeflow.demo.score_filter import plot_subset_scores, score_subsets
from modeflow.common.joblog import job_log
from modeflow.filter.build import load_attributes

with job_log(snakemake.log[0]) as log:
    pool_uids = load_attributes(snakemake.input.attributes, columns=[])["uid"].to_pylist()
    scores = score_subsets(snakemake.params.ground_truth, pool_uids,
                           dict(zip(snakemake.params.names, snakemake.input.subsets)), snakemake.params.basic_names)
    write_json(snakemake.output.scores, scores)
    plot_subset_scores(scores, snakemake.output.plot)
    for name, entry in scores.items():
        if "acceptance" in entry and not entry["acceptance"]["passed"]:
            log.warning("subset %s misses the demo acceptance: %s", name, entry["acceptance"])
