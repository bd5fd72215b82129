"""Names of the MoDE models and data experts, shared by the workflow, the training and the reports.

Expert `i` is called `expert_name(i)` ("00") where it names data: its cluster, its shard directory
`experts/00/`, the keys of reports. The CLIP model trained on it is `expert_model(i)` ("expert_00"):
its checkpoint, its evaluation, its arm in the ensemble tables. The other models are the seed model
(trained on all kept data, the experts' initialisation) and the optional dense baseline.
"""

from __future__ import annotations

SEED_MODEL = "seed"
DENSE_MODEL = "dense"
_EXPERT_PREFIX = "expert_"


def expert_name(index: int) -> str:
    """Expert directory / report name: 00, 01, ..."""
    return f"{index:02d}"


def expert_model(index: int) -> str:
    """Model / checkpoint name of expert `index`: expert_00, expert_01, ..."""
    return _EXPERT_PREFIX + expert_name(index)


def is_expert_model(model: str) -> bool:
    """Whether a model name is one of the experts' (not seed, dense or another extra model)."""
    return model.startswith(_EXPERT_PREFIX)


def expert_of_model(model: str) -> str:
    """"expert_03" -> "03", the expert name of an expert's model."""
    if not is_expert_model(model):
        raise ValueError(f"{model!r} is not an expert model name (expected {expert_model(0)!r}, ...)")
    return model.removeprefix(_EXPERT_PREFIX)


def expert_index(name_or_model: str) -> int:
    """"03" or "expert_03" -> 3."""
    name = expert_of_model(name_or_model) if is_expert_model(name_or_model) else name_or_model
    if not (name.isascii() and name.isdigit()):
        raise ValueError(f"{name_or_model!r} is neither an expert name ({expert_name(0)!r}, ...) nor an "
                         f"expert model name ({expert_model(0)!r}, ...)")
    return int(name)
