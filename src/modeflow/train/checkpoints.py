"""open_clip_train checkpoints: load them as CLIP models, check they fit, find the newest good one.

open_clip_train saves `epoch_K.pt` with a plain torch.save (not atomic), so a job killed mid-save
leaves a truncated file. Resuming picks the newest file by name, so such a file must be moved aside
(never deleted: it is data) before open_clip_train looks at the directory.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from modeflow.common.errors import InputDataError, ModeflowError

log = logging.getLogger(__name__)

# What open_clip_train needs to resume a run (scaler only exists with amp).
TRAIN_CHECKPOINT_KEYS = ("epoch", "state_dict", "optimizer")
_EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt")


class CheckpointMismatchError(ModeflowError):
    """A checkpoint's weights do not fit the architecture it is loaded into."""


class CorruptCheckpointError(InputDataError):
    """A checkpoint file cannot be read (truncated by a kill, or not a torch file)."""


def read_checkpoint(path: str | Path) -> dict:
    """torch.load a checkpoint on the cpu (memory-mapped: cheap even for large ones)."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputDataError(f"{path}: checkpoint file not found")
    try:
        # weights_only=False as open_clip_train does: its checkpoints hold the run name and
        # optimizer state; these files are our own outputs, not downloads.
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise CorruptCheckpointError(
            f"{path}: not a readable torch checkpoint (truncated or corrupt?): {exc}") from exc


def state_dict_of(checkpoint: dict) -> dict:
    """The model weights of a training checkpoint or a bare state dict, without DDP's prefix."""
    sd = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if sd and next(iter(sd)).startswith("module."):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def checkpoint_epoch(path: str | Path) -> int:
    """The number of epochs a training checkpoint has completed (its "epoch" entry)."""
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or "epoch" not in ckpt:
        raise InputDataError(f"{path}: not an open_clip_train checkpoint (no 'epoch' entry)")
    return int(ckpt["epoch"])


def check_fits(model_name: str, checkpoint: str | Path) -> None:
    """Raise CheckpointMismatchError unless the checkpoint's weights fit `model_name` exactly.

    The model is built on the meta device (no memory, no init cost) just to list its tensors.
    """
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    sd = state_dict_of(read_checkpoint(checkpoint))
    with torch.device("meta"):
        expected = open_clip.create_model(model_name, device="meta").state_dict()

    def mismatch(key: str, why: str) -> CheckpointMismatchError:
        return CheckpointMismatchError(
            f"{checkpoint}: does not fit model {model_name!r}: {why} (first offending key {key!r});"
            " was it trained with another architecture?")

    for key, tensor in expected.items():
        if key not in sd:
            raise mismatch(key, "missing key")
        if tuple(sd[key].shape) != tuple(tensor.shape):
            raise mismatch(key, f"shape {tuple(sd[key].shape)} in the file, "
                                f"{tuple(tensor.shape)} in the model")
    for key in sd:
        if key not in expected:
            raise mismatch(key, "unexpected key")


def load_clip(model_name: str, checkpoint: str | Path, device: str = "cpu"):
    """(model in eval mode, preprocess_val, tokenizer) for a checkpoint of `model_name`."""
    import open_clip

    check_fits(model_name, checkpoint)  # also: missing file, corrupt file
    model, _, preprocess_val = open_clip.create_model_and_transforms(
        model_name, pretrained=str(checkpoint), device=device)
    model.eval()
    return model, preprocess_val, open_clip.get_tokenizer(model_name)


def _epoch_files(ckpt_dir: Path) -> list[Path]:
    files = [p for p in ckpt_dir.glob("epoch_*.pt") if _EPOCH_FILE.fullmatch(p.name)]
    return sorted(files, key=lambda p: int(_EPOCH_FILE.fullmatch(p.name)[1]), reverse=True)


def latest_good_checkpoint(ckpt_dir: str | Path) -> Path | None:
    """Newest `epoch_K.pt` in `ckpt_dir` that loads; unreadable newer ones become `*.pt.corrupt`."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return None
    for path in _epoch_files(ckpt_dir):
        try:
            ckpt = read_checkpoint(path)
            missing = [k for k in TRAIN_CHECKPOINT_KEYS if k not in ckpt]
            if missing:
                raise CorruptCheckpointError(f"{path}: checkpoint lacks {missing}")
            del ckpt
            return path
        except CorruptCheckpointError as exc:
            aside = path.with_name(path.name + ".corrupt")
            path.replace(aside)
            log.warning("moved unreadable checkpoint aside: %s -> %s (%s)", path, aside, exc)
    return None
