"""Snakemake adapter: MoDE's routing (modeflow.ensemble.routing.compute_task_weights), once per task: the
experts' weights from the tasks' class names / captions, embedded by the clustering text encoder.
Output: a directory with weights.json and query_weights/ (per-caption weights of retrieval tasks)."""
from modeflow.common.atomic import atomic_dir
from modeflow.embed.encoders import load_text_encoder
from modeflow.ensemble.routing import compute_task_weights
from modeflow.common.joblog import job_log

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    opts = params.embed
    encoder = load_text_encoder(opts["encoder"], opts["model"], checkpoint=opts["checkpoint"],
                                pooling=opts["pooling"], device=opts["device"], max_length=opts["max_length"])
    with atomic_dir(snakemake.output[0]) as tmp:
        weights = compute_task_weights(list(params.tasks.values()), params.cluster, encoder, tmp)
    for task, entry in weights.items():
        log.info("%s (%s): mode %s, mode_paper %s", task, entry["kind"],
                 [round(w, 3) for w in entry["mode"]], [round(w, 3) for w in entry["mode_paper"]])
