"""Snakemake adapter: assign one chunk's embeddings to fine clusters and experts."""
import faiss

from modeflow.cluster.assign import assign_chunk
from modeflow.cluster.model import load_cluster_model
from modeflow.common.joblog import job_log

with job_log(snakemake.log[0]) as log:
    faiss.omp_set_num_threads(snakemake.threads)
    model = load_cluster_model(dict(snakemake.input.items()))
    stats = assign_chunk(snakemake.input.vectors, snakemake.input.uids, model, snakemake.output[0])
    log.info("assigned chunk %s: %s", snakemake.wildcards.chunk, stats)
