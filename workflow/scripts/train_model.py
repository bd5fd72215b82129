"""Snakemake adapter: train one model (seed, an expert, or the dense baseline) with open_clip_train
through modeflow.train.run.run_training; a rerun resumes from the run directory's checkpoints."""
import json
from pathlib import Path

from modeflow.common.joblog import job_log
from modeflow.train.data_size import smaller_than_batch
from modeflow.train.run import run_training
from modeflow.train.runs import run_samples_per_epoch

params, model = snakemake.params, snakemake.wildcards.model
with job_log(snakemake.log[0]) as log:
    data = Path(snakemake.input.data)
    tars = sorted(str(p) for p in data.glob("*.tar"))
    # the seed has no init checkpoint nor init meta (workflow/rules/common.smk: train_inputs)
    per_epoch = run_samples_per_epoch(model, params.train, data_dir=data,
                                      seed_meta=snakemake.input.get("init_meta"))
    log.info("training %s on %d shard(s) of %s, %d samples per epoch", model, len(tars), data, per_epoch)
    samples = json.loads((data / "meta.json").read_text())["output_samples"]
    small = smaller_than_batch(model, samples, params.train["batch_size"])
    if small:
        log.warning(small)  # also listed in the run-health report item
    meta = run_training(
        model,
        params.train,
        train_tars=tars,
        init_checkpoint=snakemake.input.get("init"),
        run_dir=params.run_dir,
        out_checkpoint=snakemake.output.checkpoint,
        out_meta=snakemake.output.meta,
        num_experts=params.num_experts,
        samples_per_epoch=per_epoch,
        gpus=params.gpus,
        nodes=params.nodes,
        threads=snakemake.threads,
        # read from the config, not a rule param: a housekeeping setting must not rerun training
        keep_superseded=snakemake.config["train"]["keep_superseded_runs"],
    )
    log.info("%s: %d samples seen, %.3g FLOPs, final loss %s, %.1f s", model, meta["samples_seen"],
             meta["flops"], meta["final_loss"], meta["wall_seconds"])
