"""An arm's per-sample scores on a task, rebuilt from what the pipeline saved: the models' saved
outputs (eval/<model>/<task>/, or grow/<name>/eval/<model>/<task>/ for an added expert's task) combined with the routing step's saved weights by the ensemble
stage's own functions. The combining step keeps only metrics (ensemble/arms.jsonl); this is how
a per-image score of the `mode` arm is read back.
"""

from __future__ import annotations

import numpy as np

from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_model, expert_name
from modeflow.ensemble.combine import ensemble_logits, ensemble_similarity
from modeflow.ensemble.saved_weights import arm_weights, read_task_weights
from modeflow.evaluate.outputs import ARRAYS, read_task_outputs
from modeflow.evaluate.tasks import Task
from modeflow.mixture.files import ResultsLayout

UNIFORM = "uniform"


def saved_arm_scores(layout: ResultsLayout, task: Task, arm: str,
                     num_experts: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, target) of `arm` on `task`: logits and labels (classification) or similarity and
    text_to_image (retrieval). arm: a model with saved outputs (expert_00, seed, dense, ...),
    `uniform`, or a weighted arm the routing step saved weights for (mode, mode_paper, ...)."""
    main, target = ARRAYS[task.kind]
    if layout.eval_dir(arm).is_dir():
        out = read_task_outputs(layout.task_eval_dir(arm, task.name), task, arm)
        return out[main], out[target]
    outputs = [read_task_outputs(layout.task_eval_dir(expert_model(i), task.name), task, expert_model(i))
               for i in range(num_experts)]
    scores = [o[main] for o in outputs]
    if arm == UNIFORM:
        return np.mean(scores, axis=0), outputs[0][target]
    experts = [expert_name(i) for i in range(num_experts)]
    entry = read_task_weights(layout.routing_dir, [task], experts)[task.name]
    weighted = arm_weights(entry, layout.routing_dir, task, outputs[0])
    if arm not in weighted:
        raise InputDataError(f"arm {arm!r}: no saved outputs ({layout.eval_dir(arm)}) and no routing weights "
                             f"for it in {layout.weights_json}; choose {UNIFORM}, one of "
                             f"{', '.join(weighted)}, or a model with an evaluation")
    combine = ensemble_logits if task.kind == "classification" else ensemble_similarity
    return combine(scores, weighted[arm]), outputs[0][target]
