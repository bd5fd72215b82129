"""open_clip model configs shipped with modeflow (small architectures for the demo).

open_clip only knows architectures from json files in directories it has been told about, so every
entry point that creates or loads one of ours (embed, train, evaluate) calls register_model_configs()
first. Registering twice is harmless.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

MODEL_CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"


def model_config_names() -> list[str]:
    """Architectures shipped here, e.g. ["modeflow-tiny-vit"]."""
    return sorted(p.stem for p in MODEL_CONFIG_DIR.glob("*.json"))


def register_model_configs() -> None:
    """Make open_clip.create_model(...) accept the architectures in model_configs/."""
    import open_clip

    known = set(open_clip.list_models())
    if not set(model_config_names()) <= known:
        open_clip.add_model_config(MODEL_CONFIG_DIR)


def model_config_path(model: str) -> Path | None:
    """The open_clip model-config json of `model`: the path itself when it names a .json file, else
    modeflow's shipped configs or open_clip's own (read without importing open_clip, which config
    checks at every job's start must not pay for); None if unknown."""
    if model.endswith(".json"):
        return Path(model).expanduser() if Path(model).expanduser().is_file() else None
    candidates = [MODEL_CONFIG_DIR / f"{model}.json"]
    spec = importlib.util.find_spec("open_clip")
    if spec and spec.submodule_search_locations:
        candidates += [Path(p) / "model_configs" / f"{model}.json" for p in spec.submodule_search_locations]
    return next((p for p in candidates if p.is_file()), None)
