"""The names of the ensemble's arms (the rows of its tables), one place for every stage that
writes or reads them: routing, combining, summaries, claims and costs.

The weighted arms and their routing formulas (docs/method.md §5): `mode` is MoDE with the formula
`ensemble.weights` chooses (MetaCLIP's code by default), the other formula is reported beside it
(`mode_paper`, or `mode_code` when the paper's is chosen), and `mode_sharp` is the code's scores
with a configurable softmax temperature (`ensemble.sharp_temperature`, the routing-sharpness lever).
"""

from modeflow.common.errors import ConfigError
from modeflow.common.names import RANDOM_SPLIT

FORMULAS = ("code", "paper")
SHARP_ARM, SHARP = "mode_sharp", "sharp"  # arm, and its formula: the code's scores, softmax(s / t)
ROUTING_VARIANTS = {"mode": "code", "mode_paper": "paper"}  # the default arms (ensemble.weights: code)
METHOD_ARMS = ("mode", "mode_paper", "mode_code", SHARP_ARM, "uniform", "top1")
ORACLE = "oracle"  # the best single expert per task, chosen with the test labels: a reference
UNIFORM_GROUPS = (RANDOM_SPLIT,)  # arms that average a group of models uniformly (no routing)


def routing_arms(weights: str = "code", sharp_temperature: float | None = None) -> dict[str, str]:
    """{weighted arm: routing formula}, `mode` first: `weights` is the `mode` arm's formula, the other
    formula gets an arm of its own, and a sharp arm is added when a temperature is given."""
    if weights not in FORMULAS:
        raise ConfigError(f"ensemble.weights: unknown formula {weights!r}; choose one of {list(FORMULAS)}")
    if sharp_temperature is not None and not sharp_temperature > 0:
        raise ConfigError(f"ensemble.sharp_temperature: must be > 0 (or null), got {sharp_temperature!r}")
    other = FORMULAS[1 - FORMULAS.index(weights)]
    arms = {"mode": weights, f"mode_{other}": other}
    if sharp_temperature is not None:
        arms[SHARP_ARM] = SHARP
    return arms


def entry_arms(entry: dict) -> dict[str, str]:
    """The weighted arms of one task's saved weights (weights.json entries from before `arms` was
    recorded hold the default ones)."""
    return dict(entry.get("arms") or ROUTING_VARIANTS)
