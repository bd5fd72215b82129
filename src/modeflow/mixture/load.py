"""A trained mixture loaded from a finished results directory: every expert (open_clip checkpoint
and architecture), the cluster model, and the text encoder the routing used, with the routed
classify / retrieve entry points.

The encoder comes from `ensemble/routing/encoder.json` (written by the routing step), or from the
run's config when one is given (its `embed:` section), for results made before that file existed.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from modeflow.cluster.model import ClusterModel, load_cluster_model
from modeflow.common.device import resolve_device
from modeflow.common.errors import InputDataError
from modeflow.common.names import expert_model
from modeflow.ensemble.routing_encoder import load_routing_encoder, read_encoder_options
from modeflow.mixture import route
from modeflow.mixture.classify import DEFAULT_TEMPLATES, Classification, check_classes, classify
from modeflow.mixture.files import ResultsLayout, require_cluster_model, require_finished_ensemble
from modeflow.mixture.retrieve import Retrieval, rank_images


@dataclass
class Expert:
    index: int
    name: str  # its model name: expert_00, ...
    arch: str  # open_clip architecture
    checkpoint: Path
    model: object
    preprocess: object
    tokenizer: object


def run_config_embed(config: str | Path | Mapping) -> dict:
    """The `embed:` section, defaults filled, of a config file or mapping."""
    from modeflow.config.files import read_config_file
    from modeflow.config.schema import validate_config

    raw = read_config_file(config) if isinstance(config, (str, Path)) else dict(config)
    return validate_config(raw)["embed"]


def _encoder_options(layout: ResultsLayout, config) -> dict:
    if config is not None:
        return run_config_embed(config)
    try:
        return read_encoder_options(layout.routing_dir)
    except InputDataError as exc:
        raise InputDataError(f"{exc}: cannot tell which text encoder the routing used; pass the run's "
                             "config (--config FILE, or Mixture.load(..., config=FILE))") from None


def _expert_arch(meta_path: Path) -> str:
    try:
        arch = json.loads(meta_path.read_text()).get("model")
    except (OSError, ValueError, AttributeError) as exc:
        raise InputDataError(f"cannot read the training meta {meta_path}: {exc}") from None
    if not isinstance(arch, str) or not arch:
        raise InputDataError(f"{meta_path}: no `model` (the open_clip architecture) in this training meta")
    return arch


def load_expert(layout: ResultsLayout, index: int, device: str) -> Expert:
    from modeflow.evaluate.model import load_model

    name = expert_model(index)
    arch = _expert_arch(layout.run_meta(name))
    checkpoint = layout.checkpoint(name)
    model, preprocess, tokenizer = load_model(arch, checkpoint, device=device)
    return Expert(index, name, arch, checkpoint, model, preprocess, tokenizer)


class Mixture:
    """The experts, the cluster model and the routing encoder of one trained mixture.

    A task's text side (its routed weights, each expert's zero-shot classifier) depends only on its
    class names and templates: it is computed once and kept for the last CACHED_TASKS tasks, so
    that classifying a folder in several calls routes once, as the ensemble stage routes once per
    task."""

    CACHED_TASKS = 16

    def __init__(self, experts: Sequence[Expert], cluster: ClusterModel, encoder, device: str = "cpu"):
        if len(experts) != cluster.num_experts:
            raise InputDataError(f"{len(experts)} experts given but the cluster model has {cluster.num_experts}")
        self.experts, self.cluster, self.encoder, self.device = list(experts), cluster, encoder, device
        self._tasks: OrderedDict[tuple, object] = OrderedDict()

    def _cached(self, key: tuple, compute):
        if key in self._tasks:
            self._tasks.move_to_end(key)
            return self._tasks[key]
        value = self._tasks[key] = compute()
        if len(self._tasks) > self.CACHED_TASKS:
            self._tasks.popitem(last=False)
        return value

    @classmethod
    def load(cls, results_dir: str | Path, *, config: str | Path | Mapping | None = None, encoder=None,
             device: str = "auto") -> "Mixture":
        """Load from a results directory whose ensemble stage finished (a missing file is named).
        config: the run's config, to name the routing encoder when the results do not record it;
        encoder: an already loaded one (its vectors must be the routing's)."""
        layout = ResultsLayout(Path(results_dir))
        require_cluster_model(layout)
        cluster = load_cluster_model(layout.cluster_dir)
        require_finished_ensemble(layout, cluster.num_experts)
        device = resolve_device(device, "device")
        if encoder is None:
            encoder = load_routing_encoder(_encoder_options(layout, config), device=device)
        experts = [load_expert(layout, i, device) for i in range(cluster.num_experts)]
        return cls(experts, cluster, encoder, device)

    @property
    def num_experts(self) -> int:
        return len(self.experts)

    def choose_experts(self, experts: Sequence[int] | None) -> list[Expert]:
        """The experts by index (None: all), checked."""
        if experts is None:
            return list(self.experts)
        chosen = list(experts)
        bad = [i for i in chosen if not (isinstance(i, (int, np.integer)) and 0 <= i < self.num_experts)]
        if bad or not chosen:
            raise InputDataError(f"experts {chosen}: expected distinct indices in [0, {self.num_experts})"
                                 if chosen else "the expert list is empty")
        if len(set(chosen)) != len(chosen):
            raise InputDataError(f"experts {chosen}: an expert is listed twice")
        return [self.experts[i] for i in chosen]

    def weights(self, classnames: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
                kind: str = "code", *, experts: Sequence[int] | None = None) -> np.ndarray:
        """The experts' weights for a task of these class names and templates, as the routing step
        computes them (kind: code = MoDE's code, paper = the paper's Eqs. 4-6, uniform). With
        `experts`, only theirs, renormalised."""
        names, temps = check_classes(classnames, templates)
        w = self._cached(("weights", kind, tuple(names), tuple(temps)),
                         lambda: route.task_weights(self.encoder, self.cluster, names, temps, kind))
        return w.copy() if experts is None else route.restrict(w, [e.index for e in self.choose_experts(experts)])

    def classifier(self, expert: Expert, classnames: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """(classes, D) zero-shot classifier of one expert, as the evaluation builds it."""
        from modeflow.evaluate.features import class_text_features

        names, temps = check_classes(classnames, templates)
        return self._cached(("classifier", expert.index, tuple(names), tuple(temps)),
                            lambda: class_text_features(expert.model, expert.tokenizer, names, temps,
                                                        device=self.device))

    def query_weights(self, queries: Sequence[str], kind: str = "code", *,
                      experts: Sequence[int] | None = None) -> np.ndarray:
        """(queries, experts) weights, each query routed alone (retrieval)."""
        w = route.query_weights(self.encoder, self.cluster, queries, kind)
        return w if experts is None else route.restrict(w, [e.index for e in self.choose_experts(experts)])

    def classify(self, images, classnames: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES,
                 top_k: int = 5, **options) -> Classification:
        """Per-image top-k labels and scores (modeflow.mixture.classify.classify)."""
        return classify(self, images, classnames, templates, top_k=top_k, **options)

    def rank_images(self, query: str | Sequence[str], images, **options) -> Retrieval:
        """Images ranked for each query, routed per query (modeflow.mixture.retrieve.rank_images)."""
        return rank_images(self, query, images, **options)
