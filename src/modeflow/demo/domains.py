"""The demo's visual domains: class names, random image parameters, drawing and clean captions.

A domain turns (class index, rng) into a parameter dict, draws it at any size, and writes a
caption that matches it. The draw step is pure, so tiny / extreme-aspect noise and duplicates
reuse the parameters of a clean-looking image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from . import draw, vocab


def _jitter(rgb, rng: np.random.Generator, amount: int = 14) -> list[int]:
    return [int(c) for c in np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255)]


def _colours(rng: np.random.Generator) -> dict:
    """Foreground and background: two different named colours, each jittered a little."""
    names = list(vocab.COLOURS)
    fg, bg = (names[i] for i in rng.choice(len(names), size=2, replace=False))
    return {"fg_name": fg, "bg_name": bg,
            "fg": _jitter(vocab.COLOURS[fg], rng), "bg": _jitter(vocab.COLOURS[bg], rng)}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


@lru_cache(maxsize=1)
def _digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    data = load_digits()
    return data.images, data.target


@lru_cache(maxsize=None)
def digit_indices(label: int, split: str) -> np.ndarray:
    """scikit-learn digit samples of one class reserved for `split`: every third sample is held
    out for the test tasks ("eval"), the rest draw the pool ("pool"), so no pool image reuses a
    test image's handwriting."""
    _, target = _digit_glyphs()
    idx = np.flatnonzero(target == label)
    held_out = np.arange(len(idx)) % 3 == 0
    return idx[held_out] if split == "eval" else idx[~held_out]


@dataclass(frozen=True)
class Domain:
    name: str
    classes: list[str]
    prompts: list[str]  # zero-shot templates with {c}
    sample: Callable[[int, np.random.Generator, str], dict]  # (class, rng, split) → params
    render: Callable[[dict, int], np.ndarray]  # (params, side) → HxWx3 uint8
    describe: Callable[[dict, np.random.Generator], str]  # (params, rng) → clean caption
    mixed_format: str = "{c}"  # class name in the cross-domain task

    def mixed_name(self, label: int) -> str:
        return self.mixed_format.format(c=self.classes[label])


def _shape_sample(label, rng, split):
    shape = list(vocab.SHAPES)[label]
    colours = _colours(rng)
    r = rng.uniform(0.2, 0.34)
    return {"shape": shape, **colours,
            "cx": rng.uniform(r + 0.04, 0.96 - r), "cy": rng.uniform(r + 0.04, 0.96 - r), "r": r,
            "rot": 0.0 if shape == "circle" else rng.uniform(-15, 15)}


def _shape_caption(p, rng):
    return _pick(rng, vocab.SHAPE_TEMPLATES).format(
        fg=p["fg_name"], bg=p["bg_name"], shape=_pick(rng, vocab.SHAPES[p["shape"]]))


def _digit_sample(label, rng, split):
    images, _ = _digit_glyphs()
    glyph = images[int(rng.choice(digit_indices(label, split)))]
    ink, paper = _pick(rng, list(vocab.INK)), _pick(rng, list(vocab.PAPER))
    scale = rng.uniform(0.6, 0.85)
    return {"label": label, "glyph": glyph.astype(int).tolist(), "ink": ink, "paper": paper,
            "fg": _jitter(vocab.INK[ink], rng, 10), "bg": _jitter(vocab.PAPER[paper], rng, 6),
            "scale": scale, "cx": 0.5 + rng.uniform(-0.1, 0.1), "cy": 0.5 + rng.uniform(-0.1, 0.1)}


def _digit_caption(p, rng):
    return _pick(rng, vocab.DIGIT_TEMPLATES).format(
        word=vocab.DIGIT_WORDS[p["label"]], num=p["label"], ink=p["ink"], paper=p["paper"])


def _texture_sample(label, rng, split):
    return {"pattern": list(vocab.TEXTURES)[label], **_colours(rng),
            "period": rng.uniform(0.18, 0.33), "phase": rng.uniform(0, 1),
            "seed": int(rng.integers(2**31))}


def _texture_caption(p, rng):
    return _pick(rng, vocab.TEXTURE_TEMPLATES).format(
        fg=p["fg_name"], bg=p["bg_name"], pattern=_pick(rng, vocab.TEXTURES[p["pattern"]]))


def _arrow_sample(label, rng, split):
    name = list(vocab.ARROWS)[label]
    return {"direction": name, **_colours(rng),
            "angle": vocab.ARROWS[name][0] + rng.uniform(-8, 8),
            "length": rng.uniform(0.6, 0.8), "width": rng.uniform(0.1, 0.16),
            "cx": 0.5 + rng.uniform(-0.06, 0.06), "cy": 0.5 + rng.uniform(-0.06, 0.06)}


def _arrow_caption(p, rng):
    return _pick(rng, vocab.ARROW_TEMPLATES).format(
        fg=p["fg_name"], bg=p["bg_name"], dir=_pick(rng, vocab.ARROWS[p["direction"]][1]))


DOMAINS: dict[str, Domain] = {
    "shapes": Domain("shapes", list(vocab.SHAPES), vocab.SHAPE_PROMPTS,
                     _shape_sample, draw.draw_shape, _shape_caption),
    "digits": Domain("digits", vocab.DIGIT_WORDS, vocab.DIGIT_PROMPTS,
                     _digit_sample, draw.draw_digit, _digit_caption, mixed_format="the digit {c}"),
    "textures": Domain("textures", list(vocab.TEXTURES), vocab.TEXTURE_PROMPTS,
                       _texture_sample, draw.draw_texture, _texture_caption),
    "arrows": Domain("arrows", list(vocab.ARROWS), vocab.ARROW_PROMPTS,
                     _arrow_sample, draw.draw_arrow, _arrow_caption),
}
