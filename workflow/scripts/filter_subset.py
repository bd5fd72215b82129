"""Snakemake adapter: one named uid subset as a DataComp .npy plus its stats (modeflow.filter.build)."""
from modeflow.common.atomic import write_json
from modeflow.common.joblog import job_log
from modeflow.common.subset_file import write_subset_file
from modeflow.filter.build import build_subset_from_inputs

name, spec = snakemake.wildcards.name, snakemake.params.spec
with job_log(snakemake.log[0]) as log:
    if snakemake.params.get("metadata"):  # a DataComp baseline over the CommonPool's metadata
        from modeflow.filter.datacomp_baselines import metadata_subset
        from modeflow.pool.datacomp import CommonPool

        pairs, stats = metadata_subset(name, spec, CommonPool.open(snakemake.params.metadata),
                                       basic=snakemake.params.basic)
    else:
        pairs, stats = build_subset_from_inputs(name, spec, snakemake.input, basic=snakemake.params.basic)
    if stats.get("absent_from_pool"):
        log.warning("subset %s: %d uid(s) of %s are not in the pool, e.g. %s", name,
                    stats["absent_from_pool"], spec["path"], stats["absent_examples"])
    write_subset_file(snakemake.output.npy, pairs)
    write_json(snakemake.output.stats, stats)
    log.info("subset %s: %s", name, stats)
