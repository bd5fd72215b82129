"""Snakemake adapter: phase 2 of the reshard, one expert's shard directory (modeflow.reshard.write.write_expert)."""
from pathlib import Path

from modeflow.common.joblog import job_log
from modeflow.reshard.write import write_expert

params = snakemake.params
with job_log(snakemake.log[0]) as log:
    meta = write_expert(
        snakemake.input.index,
        snakemake.input.subset,
        snakemake.output[0],
        expert=params.expert,
        num_experts=params.num_experts,
        shard_size=params.reshard["shard_size"],
        shuffle=params.reshard["shuffle"],
        seed=params.seed,
        empty_expert=params.empty_expert,
        ooc_ratio=params.reshard["ooc_ratio"],
        subset_name=params.subset_name,
        label=getattr(params, "label", None),
        tar_paths=[str(t) for entry in snakemake.input.shards
                   for t in (sorted(Path(entry).glob("*.tar")) if Path(entry).is_dir() else [Path(entry)])],
    )
    log.info("expert %s: %d samples (%d in-cluster, %d ooc) in %d shards; %d subset entries absent",
             meta["expert"], meta["output_samples"], meta["in_cluster_samples"], meta["ooc_samples"],
             meta["output_shard_count"], meta["absent_entries"])
