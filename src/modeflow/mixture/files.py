"""Where a finished results directory keeps what a trained mixture is made of, and the check that
the ensemble stage finished there: a missing file is named, never guessed around.

    cluster/{fine_centers,coarse_centers,fine_to_coarse}.npy, params.json   the cluster model (grow/cluster/ when
                                                                          experts were added: ensemble/routing/cluster_model.json)
    models/expert_NN.pt, expert_NN.json                                   each expert (checkpoint, run meta)
    ensemble/routing/weights.json, encoder.json                           the routing step's output
    ensemble/arms.jsonl                                                   the combining step's output
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeflow.cluster.model import model_paths
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_model
from modeflow.ensemble.combine import task_eval_dir
from modeflow.ensemble.saved_weights import WEIGHTS_JSON
from modeflow.grow.model import routed_cluster_dir


@dataclass(frozen=True)
class ResultsLayout:
    """Paths inside one results directory (the config's `results_dir`)."""

    root: Path

    @property
    def cluster_dir(self) -> Path:
        """The cluster model the ensemble routed with: cluster/, or grow/cluster/ once experts were added."""
        return routed_cluster_dir(self.root, self.routing_dir)

    @property
    def cluster_files(self) -> dict[str, Path]:
        return model_paths(self.cluster_dir)

    @property
    def routing_dir(self) -> Path:
        return self.root / "ensemble" / "routing"

    @property
    def weights_json(self) -> Path:
        return self.routing_dir / WEIGHTS_JSON

    @property
    def arms_jsonl(self) -> Path:
        return self.root / "ensemble" / "arms.jsonl"

    @property
    def costs_json(self) -> Path:
        return self.root / "train" / "costs.json"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def checkpoint(self, model: str) -> Path:
        return self.models_dir / f"{model}.pt"

    def run_meta(self, model: str) -> Path:
        return self.models_dir / f"{model}.json"

    def eval_dir(self, model: str) -> Path:
        return self.root / "eval" / model

    def task_eval_dir(self, model: str, task: str) -> Path:
        """Where `model`'s saved outputs on `task` lie: eval/<model>/, or grow/<name>/eval/<model>/
        for an added expert's task (modeflow.ensemble.combine.task_eval_dir)."""
        return task_eval_dir([self.eval_dir(model), *sorted(self.root.glob(f"grow/*/eval/{model}"))], task)

    @property
    def grown_subset_files(self) -> dict[str, Path]:
        """{name: grow/<name>/members.npy}: the data each added expert trained on, as subset files."""
        return {p.parent.name: p for p in sorted(self.root.glob("grow/*/members.npy"))}

    def subset_file(self, name: str) -> Path:
        return self.root / "filter" / "subsets" / f"{name}.npy"


def _first_missing(paths) -> Path | None:
    return next((p for p in paths if not p.is_file()), None)


def require_cluster_model(layout: ResultsLayout) -> None:
    if not layout.root.is_dir():
        raise InputDataError(f"results directory {layout.root} does not exist")
    missing = _first_missing(layout.cluster_files.values())
    if missing:
        raise InputDataError(f"{layout.root} holds no finished cluster model: {missing} is missing "
                             "(run the pipeline's cluster stage first)")


def require_finished_ensemble(layout: ResultsLayout, num_experts: int) -> None:
    """Every expert's checkpoint and run meta, the routing weights and the ensemble's arms.jsonl."""
    require_cluster_model(layout)
    experts = [expert_model(i) for i in range(num_experts)]
    wanted = [p for m in experts for p in (layout.checkpoint(m), layout.run_meta(m))]
    missing = _first_missing([*wanted, layout.weights_json, layout.arms_jsonl])
    if missing:
        raise InputDataError(f"{layout.root} holds no finished ensemble: {missing} is missing "
                             f"(the cluster model has {num_experts} experts; run the pipeline to its "
                             "ensemble stage first)")
