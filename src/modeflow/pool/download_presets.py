"""Download settings that follow the training preset, and the check that images are big enough.

The demo keeps its small letterboxed images. DataComp's presets download as DataComp's
`download_upstream.py` does: 512 px on the longer side (`keep_ratio_largest`), resizing only
images that are bigger, img2dataset's default encoding (jpg, quality 95). A model whose input is
larger than the downloaded side would train on upscaled images: a config error, unless allowed.
"""

from __future__ import annotations

import json

from modeflow.common.errors import ConfigError
from modeflow.train.architectures import model_config_path

_DEMO = {"image_size": 32, "resize_mode": "border", "resize_only_if_bigger": False}
_DATACOMP = {"image_size": 512, "resize_mode": "keep_ratio_largest", "resize_only_if_bigger": True}
DOWNLOAD_PRESETS = {"demo": _DEMO, "small": _DATACOMP, "medium": _DATACOMP, "large": _DATACOMP,
                    "xlarge": _DATACOMP}


def resolve_download(download: dict, preset: str) -> dict:
    """The download section with every null filled from the training preset's settings."""
    defaults = DOWNLOAD_PRESETS[preset]
    return {**download, **{k: v for k, v in defaults.items() if download.get(k) is None}}


def model_input_side(model: str) -> int | None:
    """The image side an open_clip architecture takes (its config's vision_cfg.image_size); None
    when the architecture's config is not found."""
    path = model_config_path(model)
    if path is None:
        return None
    size = json.loads(path.read_text()).get("vision_cfg", {}).get("image_size")
    return max(size) if isinstance(size, (list, tuple)) else size


def check_image_side(download: dict, model: str) -> None:
    """Refuse a model whose input side exceeds the downloaded images' (download.image_size)."""
    side = model_input_side(model)
    if side is None or download.get("allow_upscale") or side <= download["image_size"]:
        return
    raise ConfigError(
        f"download.image_size: {download['image_size']} px is smaller than the input of train.model "
        f"{model!r} ({side} px): every image would be upscaled for training. Raise download.image_size "
        f"to at least {side}, pick a smaller model, or set download.allow_upscale: true")
