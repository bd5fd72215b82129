"""The images a user hands the mixture: paths, directories or PIL images, in a fixed order, decoded
as the evaluation decodes a task's images (PIL, loaded, converted to RGB).

An image that does not decode is not fatal: it is named with the reason, and the others go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from modeflow.common.errors import InputDataError

# what a directory is searched for (a file named explicitly is always tried, whatever its suffix)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageInput:
    name: str  # how results and warnings name it: the path, or "image[i]" for an in-memory image
    source: object  # a Path, or a PIL image


@dataclass(frozen=True)
class FailedImage:
    name: str
    reason: str


def _is_pil(item) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow is a dependency
        return False
    return isinstance(item, Image.Image)


def _directory_images(directory: Path) -> list[Path]:
    found = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                   and not p.name.startswith("."))
    if not found:
        raise InputDataError(f"{directory}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this directory")
    return found


def expand_images(items: Iterable) -> list[ImageInput]:
    """Paths (a directory: its image files, sorted, recursively) and PIL images, in the order given."""
    inputs: list[ImageInput] = []
    for i, item in enumerate(items):
        if _is_pil(item):
            inputs.append(ImageInput(f"image[{i}]", item))
            continue
        path = Path(item)
        if path.is_dir():
            inputs += [ImageInput(str(p), p) for p in _directory_images(path)]
        else:  # a missing or broken file fails when it is decoded, named, and the others go on
            inputs.append(ImageInput(str(path), path))
    if not inputs:
        raise InputDataError("no images given")
    return inputs


def decode_image(image: ImageInput):
    """The image as an RGB PIL image; raises InputDataError naming it when it does not decode."""
    from PIL import Image, UnidentifiedImageError

    if _is_pil(image.source):
        try:
            return image.source.convert("RGB")
        except (OSError, ValueError) as exc:
            raise InputDataError(f"{image.name}: cannot convert to RGB: {exc}") from None
    try:
        with Image.open(image.source) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise InputDataError(f"{image.name}: no such file") from None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputDataError(f"{image.name}: does not decode as an image ({type(exc).__name__}: {exc})") from None
