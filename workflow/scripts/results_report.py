"""Snakemake adapter: the experts' report items — summary table with every arm's cost and the claims
table (html), ensemble weights heatmap, accuracy bars, training curves and each arm's cost
(modeflow.ensemble.report, modeflow.ensemble.costs, modeflow.ensemble.summary)."""
import os

from modeflow.common.atomic import atomic_path, write_json
from modeflow.ensemble.costs import arm_costs, load_metas
from modeflow.ensemble.saved_weights import WEIGHTS_JSON
from modeflow.common.joblog import job_log
from modeflow.ensemble.summary import read_claims, read_summary, summary_html
from modeflow.ensemble.report import plot_accuracy_bars, plot_training_curves, plot_weights_heatmap

inp, out = snakemake.input, snakemake.output
with job_log(snakemake.log[0]) as log:
    metas = load_metas(inp.train_meta)
    costs = arm_costs(metas)
    write_json(out.costs, costs)
    with atomic_path(out.table) as tmp:
        tmp.write_text(summary_html(read_summary(inp.summary_csv), costs, claims=read_claims(inp.claims)))
    plot_weights_heatmap(os.path.join(inp.routing, WEIGHTS_JSON), out.weights)
    plot_accuracy_bars(inp.summary_csv, out.accuracy)
    plot_training_curves(inp.train_meta, out.curves)
    log.info("report items written; costs: %s", costs)
