"""Snakemake adapter: MoDE's routing (modeflow.ensemble.routing.compute_task_weights), once per task: the
experts' weights from the tasks' class names / captions, embedded by the clustering text encoder.
Output: a directory with weights.json, query_weights/ (per-caption weights of retrieval tasks) and
encoder.json (the encoder's options, modeflow.ensemble.routing_encoder)."""
from modeflow.common.atomic import atomic_dir
from modeflow.ensemble.routing_encoder import load_routing_encoder, write_encoder_options
from modeflow.grow.model import write_cluster_model_dir
from modeflow.ensemble.routing import compute_task_weights
from modeflow.common.joblog import job_log

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    encoder = load_routing_encoder(params.embed)
    with atomic_dir(snakemake.output[0]) as tmp:
        weights = compute_task_weights(list(params.tasks.values()), params.cluster, encoder, tmp,
                                       weights=params.ensemble["weights"],
                                       sharp_temperature=params.ensemble["sharp_temperature"])
        write_encoder_options(tmp, params.embed)  # modeflow.mixture routes new class names with it
        if hasattr(params, "cluster_model_dir"):  # experts were added: the mixture routes with the grown model
            write_cluster_model_dir(tmp, params.cluster_model_dir)
    for task, entry in weights.items():
        log.info("%s (%s): %s", task, entry["kind"],
                 ", ".join(f"{arm} ({formula}) {[round(w, 3) for w in entry[arm]]}" for arm, formula in entry["arms"].items()))
