"""The routing step's text encoder: loaded from the `embed:` options, and those options saved
beside the routing weights, so that whoever routes new class names later (modeflow.mixture) loads
the very encoder the clustering and the routing used.

    <routing dir>/encoder.json   {encoder, model, checkpoint, pooling, device, max_length}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from modeflow.common.atomic import write_json
from modeflow.common.errors import InputDataError
from modeflow.embed.encoders import TextEncoder, load_text_encoder

ENCODER_JSON = "encoder.json"
# the embed: keys that decide which vectors come out (batch_size does not)
ENCODER_KEYS = ("encoder", "model", "checkpoint", "pooling", "device", "max_length")


def encoder_options(embed_cfg: Mapping) -> dict:
    """The `embed:` keys that pick the encoder (a config's filled-in embed section)."""
    missing = [key for key in ENCODER_KEYS if key not in embed_cfg]
    if missing:
        raise InputDataError(f"text encoder options lack {', '.join(missing)} (expected the embed: "
                             f"section with defaults filled: {', '.join(ENCODER_KEYS)})")
    return {key: embed_cfg[key] for key in ENCODER_KEYS}


def load_routing_encoder(embed_cfg: Mapping, device: str | None = None) -> TextEncoder:
    """The encoder the options name; `device` overrides the recorded one (e.g. "cpu")."""
    opts = encoder_options(embed_cfg)
    return load_text_encoder(opts["encoder"], opts["model"], checkpoint=opts["checkpoint"],
                             pooling=opts["pooling"], device=device or opts["device"],
                             max_length=opts["max_length"])


def write_encoder_options(routing_dir: str | Path, embed_cfg: Mapping) -> None:
    write_json(Path(routing_dir) / ENCODER_JSON, encoder_options(embed_cfg))


def read_encoder_options(routing_dir: str | Path) -> dict:
    """The options saved by write_encoder_options; a missing or broken file is named."""
    path = Path(routing_dir) / ENCODER_JSON
    try:
        return encoder_options(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputDataError(f"{path} is missing") from None
    except (OSError, ValueError) as exc:
        raise InputDataError(f"cannot read the routing encoder's options {path}: {exc}") from None
    except InputDataError as exc:
        raise InputDataError(f"{path}: {exc}") from None
