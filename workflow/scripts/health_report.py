"""Snakemake adapter: the run-health report item (modeflow.report.health)."""
import os

from modeflow.common.atomic import atomic_path, write_json
from modeflow.common.joblog import job_log
from modeflow.report.health import collect_health, health_html

inp = snakemake.input
with job_log(snakemake.log[0]) as log:
    # a model's training data, by model: the data directories are listed in the models' order
    training_data = {model: os.path.join(data, "meta.json")
                     for model, data in zip(snakemake.params.models, inp.training_data)}
    health = collect_health(
        download_summary=inp.get("download_summary"),
        pool_stats=inp.get("pool_stats"),
        reshard_chunks=inp.reshard_chunks,
        reshard_summary=inp.reshard_summary,
        training_data=training_data,
        global_batch=snakemake.params.global_batch,
        pool_index_chunks=inp.get("pool_index", []),
    )
    for warning in health["warnings"]:
        log.warning("%s: %s", warning["stage"], warning["message"])
    write_json(snakemake.output.health, health)
    with atomic_path(snakemake.output.table) as tmp:
        tmp.write_text(health_html(health))
