"""A shard's name: its tar's file name without `.tar`, as img2dataset names the shards it writes
and as the embed, attribute and reshard tables record each sample's shard."""

from __future__ import annotations

from pathlib import Path, PurePosixPath


def shard_of_tar(tar: str | Path) -> str:
    """`.../00003.tar` (a path or a url) -> "00003"."""
    return PurePosixPath(str(tar)).name.removesuffix(".tar")
