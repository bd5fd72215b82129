"""Web noise of the demo pool: how many rows of each kind, and the bytes of the broken ones."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

NOISE_KINDS = ("mismatched", "non_english", "too_short", "tiny", "extreme_aspect",
               "dead_link", "corrupt", "duplicate")


def noise_counts(num_samples: int, noise_fraction: float) -> dict[str, int]:
    """Rows per kind: round(noise_fraction * n) split evenly over NOISE_KINDS; the remainder of
    that split and every other row are clean."""
    per_kind = int(round(noise_fraction * num_samples)) // len(NOISE_KINDS)
    counts = {"clean": num_samples - per_kind * len(NOISE_KINDS)}
    counts.update({kind: per_kind for kind in NOISE_KINDS})
    return counts


def tiny_side(image_size: int) -> int:
    """Side of `tiny` images: at most a quarter of the clean side and below 16 px in any case."""
    return max(2, min(image_size // 4, 15))


def squash(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An extreme-aspect version (ratio ≥ 4): the full side one way, a fifth of it the other."""
    side = image.shape[0]
    short = max(1, side // 5)
    size = (side, short) if rng.random() < 0.5 else (short, side)  # PIL: (width, height)
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def corrupt_bytes(png: bytes, rng: np.random.Generator) -> bytes:
    """Bytes no image decoder accepts: half are a PNG cut inside its header chunk (so even
    PIL's LOAD_TRUNCATED_IMAGES cannot open it), half an HTML error page under an image name."""
    if rng.random() < 0.5:
        return png[:24]  # 8-byte signature + IHDR length and type + the width: no height
    code = int(rng.integers(100000))
    return f"<html><body><h1>Error</h1><p>request {code} failed</p></body></html>\n".encode()


def encode_png(image: np.ndarray) -> bytes:
    """PNG with fixed settings and no metadata: the same pixels always give the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
