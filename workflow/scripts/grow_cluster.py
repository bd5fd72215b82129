"""Snakemake adapter: an added expert's cluster among its new data (modeflow.grow.select.grow_cluster)."""
import faiss

from modeflow.cluster.model import load_cluster_model
from modeflow.common.joblog import job_log
from modeflow.grow.select import grow_cluster
from modeflow.grow.spec import GrownCluster

inp, out, params = snakemake.input, snakemake.output, snakemake.params
with job_log(snakemake.log[0]) as log:
    faiss.omp_set_num_threads(snakemake.threads)
    stats = grow_cluster(inp.vectors, inp.uids, load_cluster_model(dict(inp.items())), GrownCluster(**params.grown),
                         params.cluster, params.seed, list(inp.pool_uids), out_assign=out.assign,
                         out_members=out.members, out_centers=out.fine_centers, out_stats=out.stats)
    log.info("%s: %d of %d new samples form expert %s's cluster (%s); %d left out, nearest to experts %s",
             stats["label"], stats["members"], stats["rows"], stats["expert"], stats["how"], stats["left_out"],
             stats["left_out_nearest_expert"])
