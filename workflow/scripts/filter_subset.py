"""Snakemake adapter: one named uid subset as a DataComp .npy plus its stats (modeflow.filter.build)."""
import pyarrow as pa
import pyarrow.parquet as pq

from modeflow.common.atomic import save_npy, write_json
from modeflow.common.joblog import job_log
from modeflow.filter.build import build_subset, load_attributes, load_embeddings
from modeflow.filter.subsets import read_subset_file

name, spec, inputs = snakemake.wildcards.name, snakemake.params.spec, snakemake.input
with job_log(snakemake.log[0]) as log:
    attributes = vectors = operands = None
    if "subsets" in inputs.keys():
        operands = {dep: read_subset_file(path) for dep, path in zip(spec["of"], inputs.subsets)}
    else:
        attributes = load_attributes(inputs.attributes)
    if spec["kind"] == "dedup_near":
        vectors = load_embeddings(inputs.vectors, inputs.uids, attributes["uid"].to_pylist())
    scores = None
    if spec["kind"] == "clip_score":
        scores = pa.concat_tables(pq.read_table(p) for p in inputs.scores)
    pairs, stats = build_subset(name, spec, basic=snakemake.params.basic, attributes=attributes,
                                vectors=vectors, operands=operands, scores=scores)
    if stats.get("absent_from_pool"):
        log.warning("subset %s: %d uid(s) of %s are not in the pool, e.g. %s", name,
                    stats["absent_from_pool"], spec["path"], stats["absent_examples"])
    save_npy(snakemake.output.npy, pairs)
    write_json(snakemake.output.stats, stats)
    log.info("subset %s: %s", name, stats)
