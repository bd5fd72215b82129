"""Snakemake adapter: fit the two-level cluster model on a sample of all chunks' embeddings."""
import faiss

from modeflow.cluster.model import fit_cluster_model, save_cluster_model
from modeflow.cluster.sample import sample_embeddings
from modeflow.common.joblog import job_log

opts = snakemake.params.cluster
with job_log(snakemake.log[0]) as log:
    faiss.omp_set_num_threads(snakemake.threads)  # fixed thread count: repeatable sums
    sample = sample_embeddings(snakemake.input.vectors, fraction=opts["sample_fraction"],
                               max_rows=opts["sample_max"], seed=snakemake.params.seed)
    log.info("fitting on %d sampled rows of dim %d", *sample.shape)
    model = fit_cluster_model(sample, opts, seed=snakemake.params.seed)
    save_cluster_model(model, dict(snakemake.output.items()))
    log.info("cluster model: %s", model.params)
