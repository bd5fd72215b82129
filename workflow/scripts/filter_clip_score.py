"""Snakemake adapter: DataComp clip scores of one chunk's samples (modeflow.filter.clip_score)."""
from modeflow.common.atomic import write_parquet
from modeflow.train.checkpoints import load_clip
from modeflow.filter.clip_score import score_chunk
from modeflow.common.device import resolve_device
from modeflow.common.joblog import job_log

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    device = resolve_device(params.device, "evaluate.device")
    model, preprocess, tokenizer = load_clip(params.model, snakemake.input.scorer, device=device)
    table = score_chunk(params.tars, snakemake.input.uids, model, preprocess, tokenizer,
                        batch_size=params.batch_size, device=device)
    write_parquet(snakemake.output[0], table)
    scores = table["clip_score"].to_numpy()
    log.info("chunk %s: %d clip scores by %s (%s), mean %.4f", snakemake.wildcards.chunk, len(scores),
             snakemake.input.scorer, params.model, float(scores.mean()) if len(scores) else float("nan"))
