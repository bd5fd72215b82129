"""Snakemake adapter: the grown cluster model the ensemble routes with (modeflow.grow.model.grow_model)."""
import numpy as np

from modeflow.cluster.model import load_cluster_model, save_cluster_model
from modeflow.common.joblog import job_log
from modeflow.grow.model import grow_model
from modeflow.grow.spec import GrownCluster

inp = snakemake.input
with job_log(snakemake.log[0]) as log:
    base = load_cluster_model(dict(inp.items()))
    grown = grow_model(base, [GrownCluster(**g) for g in snakemake.params.grown],
                       [np.load(path) for path in inp.added_centers])
    save_cluster_model(grown, dict(snakemake.output.items()))
    log.info("grown cluster model: %d experts (%d before), %d fine clusters (%d before)",
             grown.num_experts, base.num_experts, grown.num_fine, base.num_fine)
