"""Names of the MoDE models and data experts, shared by the workflow, the training and the reports.

Expert `i` is called `expert_name(i)` ("00") where it names data: its cluster, its shard directory
`experts/00/`, the keys of reports. The CLIP model trained on it is `expert_model(i)` ("expert_00"):
its checkpoint, its evaluation, its arm in the ensemble tables. The other models are the seed model
(trained on all kept data, the experts' initialisation), the optional dense baseline at equal
compute, and the control arms' models: `dense_1x` (the seed continued to the end of the schedule)
and the random-split experts `random_model(i)` ("random_00"), trained on `random_split/experts/00/`.
"""

from __future__ import annotations

SEED_MODEL = "seed"
DENSE_MODEL = "dense"
DENSE_1X_MODEL = "dense_1x"
_EXPERT_PREFIX = "expert_"
_RANDOM_PREFIX = "random_"
# the control arms (train.control_arms): n experts on a random split of the kept data with the
# clusters' sizes (models random_00, ...), and the dense model trained to the end of the schedule
RANDOM_SPLIT = "random_split"
CONTROL_ARMS = (RANDOM_SPLIT, DENSE_1X_MODEL)


def expert_name(index: int) -> str:
    """Expert directory / report name: 00, 01, ..."""
    return f"{index:02d}"


def expert_model(index: int) -> str:
    """Model / checkpoint name of expert `index`: expert_00, expert_01, ..."""
    return _EXPERT_PREFIX + expert_name(index)


def random_model(index: int) -> str:
    """Model name of random-split expert `index`: random_00, random_01, ..."""
    return _RANDOM_PREFIX + expert_name(index)


def is_random_model(model: str) -> bool:
    """Whether a model name is one of the random-split experts' (random_00, ...)."""
    return model.startswith(_RANDOM_PREFIX) and model.removeprefix(_RANDOM_PREFIX).isdigit()


def random_of_model(model: str) -> str:
    """"random_03" -> "03", the data directory name of a random-split expert's model."""
    if not is_random_model(model):
        raise ValueError(f"{model!r} is not a random-split expert model name (expected {random_model(0)!r}, ...)")
    return model.removeprefix(_RANDOM_PREFIX)


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
