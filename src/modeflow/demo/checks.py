"""What the demo pool lets us check about the experts and the ensemble, with the figures.

The demo's ground truth says which domain each clean sample comes from; the cluster stage's
contingency table (cluster/demo_scores.json) therefore names each domain's expert. These checks
are reported, never asserted inside the workflow: a demo that does not show MoDE's effect says so.
"""

from __future__ import annotations

import json
from typing import Mapping, Sequence

import numpy as np

from modeflow.common.names import DENSE_MODEL, expert_index, expert_model, is_expert_model
from modeflow.ensemble.saved_weights import read_weights_json
from modeflow.ensemble.summary import read_summary


def domain_experts(cluster_scores: Mapping) -> dict[str, str]:
    """{domain: expert name} — the expert holding most of the domain's clean samples. The table
    is experts x domains (modeflow.demo.score_cluster), so a domain's owner is its column's argmax."""
    table = np.asarray(cluster_scores["contingency_clean"])
    return {domain: cluster_scores["experts"][int(np.argmax(table[:, j]))]
            for j, domain in enumerate(cluster_scores["domains"])}


def demo_checks(summary: Mapping[str, Mapping[str, float]], weights: Mapping[str, Sequence[float]],
                cluster_scores: Mapping, domains: Sequence[str], costs: Mapping | None = None,
                arm: str = "mode") -> dict:
    """Per domain task: the domain's expert vs the best expert and the most-weighted one; then the
    MoDE arm's (`arm`: mode or mode_paper) average against the uniform ensemble and the dense baseline."""
    owner = domain_experts(cluster_scores)
    experts = sorted(arm for arm in summary if is_expert_model(arm))
    per_task = {}
    for domain in domains:
        if domain not in owner or domain not in next(iter(summary.values()), {}):
            continue
        scores = {arm: summary[arm][domain] for arm in experts}
        best = max(scores, key=scores.get)
        own = expert_model(expert_index(owner[domain]))
        task_weights = list(weights.get(domain, []))
        top_weight = expert_model(int(np.argmax(task_weights))) if task_weights else None
        per_task[domain] = {
            "domain_expert": own,
            "best_expert": best,
            "domain_expert_is_best": best == own,
            "most_weighted_expert": top_weight,
            "weight_on_domain_expert": task_weights[expert_index(own)] if task_weights else None,
            "most_weight_on_domain_expert": top_weight == own,
            "expert_scores": scores,
        }

    def avg(arm):
        return summary.get(arm, {}).get("average")

    mode, uniform, dense = avg(arm), avg("uniform"), avg(DENSE_MODEL)
    return {
        "mode_arm": arm,
        "domain_tasks": per_task,
        "each_expert_best_on_its_domain": all(t["domain_expert_is_best"] for t in per_task.values()),
        "weights_pick_the_domain_expert": all(t["most_weight_on_domain_expert"] for t in per_task.values()),
        "average": {arm: avg(arm) for arm in summary},
        "mode_beats_uniform": None if None in (mode, uniform) else mode > uniform,
        "mode_beats_dense": None if None in (mode, dense) else mode > dense,
        "costs": dict(costs or {}),
    }


def load_and_check(summary_csv, weights_json, cluster_scores_json, domains, costs_json=None,
                   arm: str = "mode") -> dict:
    """The checks from the ensemble's files; weights.json holds {task: {arm: [weight per expert]}}."""
    weights = {task: entry[arm] for task, entry in read_weights_json(weights_json).items() if arm in entry}
    with open(cluster_scores_json) as fh:
        cluster_scores = json.load(fh)
    costs = None
    if costs_json:
        with open(costs_json) as fh:
            costs = json.load(fh)
    return demo_checks(read_summary(summary_csv), weights, cluster_scores, domains, costs, arm=arm)
