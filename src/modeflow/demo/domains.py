"""The demo's visual domains: compositional class names, random image parameters, drawing and
clean captions.

A class composes two visible attributes (shapes: colour × shape, digits: ink × digit, arrows:
colour × direction, textures: colour pair × pattern, clocks: face colour × hour), which gives every
domain 40–48 classes. A domain turns (class index, rng, split) into a parameter dict — the class's
attributes plus attributes outside the class (background, size, position, thickness, scale, paper,
clock style and trim) — draws it at any size, and writes a caption that matches it. The draw step
is pure, so tiny / extreme-aspect noise and duplicates reuse the parameters of a clean-looking image.

DEFAULT_DOMAINS are the four a demo pool has unless told otherwise; `clocks` is a fifth, opt-in
domain (the new data a finished four-domain mixture can grow an expert on).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from itertools import product
from typing import Callable

import numpy as np

from . import draw, vocab
from .vocab import article


def _jitter(rgb, rng: np.random.Generator, amount: int = 14) -> list[int]:
    return [int(c) for c in np.clip(np.asarray(rgb) + rng.integers(-amount, amount + 1, 3), 0, 255)]


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _background(rng: np.random.Generator, fg_name: str) -> str:
    """A named background colour other than the foreground's."""
    return _pick(rng, [c for c in vocab.COLOURS if c != fg_name])


def _word(rng: np.random.Generator, word: str, synonyms) -> str:
    """The class word, or now and then one of its synonyms."""
    return _pick(rng, list(synonyms)) if synonyms and rng.random() < vocab.SYNONYM_RATE else word


def _finish(caption: str, domain: str, rng: np.random.Generator) -> str:
    """Web-style extras on some captions: a label in front ('preview: '), where the image is used
    (' on a street sign') and a tail (', free clip art')."""
    if rng.random() < vocab.PREFIX_RATE:
        caption = f"{_pick(rng, vocab.PREFIXES)}: {caption}"
    if rng.random() < vocab.CONTEXT_RATE:
        caption = f"{caption} {_pick(rng, vocab.CONTEXTS[domain])}"
    if rng.random() < vocab.SUFFIX_RATE:
        caption = f"{caption}, {_pick(rng, vocab.SUFFIXES)}"
    return caption


@lru_cache(maxsize=1)
def _digit_glyphs() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    data = load_digits()
    return data.images, data.target


@lru_cache(maxsize=None)
def digit_indices(label: int, split: str) -> np.ndarray:
    """scikit-learn digit samples of one digit reserved for `split`: every third sample is held
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


# --- shapes: colour × shape -------------------------------------------------------------------
_SHAPE_CLASSES = list(product(vocab.SHAPE_COLOURS, vocab.SHAPES))  # (colour, shape)


def _shape_sample(label, rng, split):
    colour, shape = _SHAPE_CLASSES[label]
    bg = _background(rng, colour)
    if rng.random() < 0.5:  # small, at one of nine named places
        size, r = "small", rng.uniform(0.17, 0.22)
        position = _pick(rng, list(vocab.POSITIONS))
        cx, cy = (c + rng.uniform(-0.03, 0.03) for c in vocab.POSITIONS[position])
    else:  # large, centred
        size, r, position = "large", rng.uniform(0.28, 0.34), "center"
        cx, cy = (0.5 + rng.uniform(-0.04, 0.04) for _ in range(2))
    return {"shape": shape, "fg_name": colour, "bg_name": bg, "size": size, "position": position,
            "fg": _jitter(vocab.COLOURS[colour], rng), "bg": _jitter(vocab.COLOURS[bg], rng),
            "cx": cx, "cy": cy, "r": r, "rot": 0.0 if shape == "circle" else rng.uniform(-15, 15)}


def _shape_caption(p, rng):
    obj = f"{p['fg_name']} {_word(rng, p['shape'], vocab.SHAPES[p['shape']])}"
    text = _pick(rng, vocab.SHAPE_TEMPLATES).format(
        obj=obj, a_obj=article(obj), a_size=article(p["size"]), fg=p["fg_name"], bg=p["bg_name"],
        a_bg=article(p["bg_name"]), pos=vocab.POSITION_PHRASES[p["position"]])
    return _finish(text, "shapes", rng)


# --- digits: ink × digit ----------------------------------------------------------------------
_DIGIT_CLASSES = list(product(vocab.INK, range(10)))  # (ink, digit)


def _digit_sample(label, rng, split):
    images, _ = _digit_glyphs()
    ink, digit = _DIGIT_CLASSES[label]
    glyph = images[int(rng.choice(digit_indices(digit, split)))]
    paper = _pick(rng, list(vocab.PAPER))
    size = "small" if rng.random() < 0.5 else "large"
    scale = rng.uniform(0.5, 0.62) if size == "small" else rng.uniform(0.75, 0.9)
    slant = _pick(rng, list(vocab.SLANTS))
    return {"digit": digit, "glyph": glyph.astype(int).tolist(), "ink": ink, "paper": paper,
            "size": size, "slant": slant, "rot": vocab.SLANTS[slant] + rng.uniform(-3, 3), "fg": _jitter(vocab.INK[ink], rng, 10), "bg": _jitter(vocab.PAPER[paper], rng, 6),
            "scale": scale, "cx": 0.5 + rng.uniform(-0.1, 0.1), "cy": 0.5 + rng.uniform(-0.1, 0.1)}


def _digit_caption(p, rng):
    text = _pick(rng, vocab.DIGIT_TEMPLATES).format(
        word=vocab.DIGIT_WORDS[p["digit"]], num=p["digit"], ink=p["ink"], paper=p["paper"],
        size=p["size"], a_size=article(p["size"]), slant=p["slant"], a_slant=article(p["slant"]))
    return _finish(text, "digits", rng)


# --- textures: colour pair × pattern ----------------------------------------------------------
_TEXTURE_CLASSES = list(product(vocab.TEXTURE_PAIRS, vocab.TEXTURES))  # ((colour, colour), pattern)


def _texture_sample(label, rng, split):
    pair, pattern = _TEXTURE_CLASSES[label]
    fg, bg = pair if rng.random() < 0.5 else pair[::-1]
    scale = _pick(rng, list(vocab.TEXTURE_SCALES))
    return {"pattern": pattern, "pair": list(pair), "fg_name": fg, "bg_name": bg, "scale": scale,
            "fg": _jitter(vocab.COLOURS[fg], rng), "bg": _jitter(vocab.COLOURS[bg], rng),
            "period": rng.uniform(*vocab.TEXTURE_SCALES[scale]), "phase": rng.uniform(0, 1),
            "seed": int(rng.integers(2**31))}


def _texture_caption(p, rng):
    pattern = _word(rng, p["pattern"], vocab.TEXTURES[p["pattern"]])
    first, second = p["pair"] if rng.random() >= vocab.SYNONYM_RATE else p["pair"][::-1]
    text = _pick(rng, vocab.TEXTURE_TEMPLATES).format(
        obj=f"{first} and {second} {pattern}", pattern=pattern, fg=p["fg_name"], bg=p["bg_name"],
        a_bg=article(p["bg_name"]), scale=p["scale"], a_scale=article(p["scale"]))
    return _finish(text, "textures", rng)


# --- arrows: colour × direction ---------------------------------------------------------------
_ARROW_CLASSES = list(product(vocab.ARROW_COLOURS, vocab.ARROWS))  # (colour, direction)


def _arrow_sample(label, rng, split):
    colour, direction = _ARROW_CLASSES[label]
    bg = _background(rng, colour)
    thick = "thin" if rng.random() < 0.5 else "thick"
    width = rng.uniform(0.08, 0.11) if thick == "thin" else rng.uniform(0.15, 0.19)
    length = _pick(rng, list(vocab.ARROW_LENGTHS))
    return {"direction": direction, "fg_name": colour, "bg_name": bg, "thickness": thick,
            "length_name": length,
            "fg": _jitter(vocab.COLOURS[colour], rng), "bg": _jitter(vocab.COLOURS[bg], rng),
            "angle": vocab.ARROWS[direction][0] + rng.uniform(-8, 8),
            "length": rng.uniform(*vocab.ARROW_LENGTHS[length]), "width": width,
            "cx": 0.5 + rng.uniform(-0.06, 0.06), "cy": 0.5 + rng.uniform(-0.06, 0.06)}


def _arrow_caption(p, rng):
    direction = p["direction"]
    pointing = _word(rng, f"pointing {direction}", vocab.ARROWS[direction][1])
    obj = f"{p['fg_name']} arrow {pointing}"
    text = _pick(rng, vocab.ARROW_TEMPLATES).format(
        obj=obj, a_obj=article(obj), fg=p["fg_name"], bg=p["bg_name"], a_bg=article(p["bg_name"]),
        thick=p["thickness"], a_thick=article(p["thickness"]), dir=pointing,
        a_length=article(p["length_name"]))
    return _finish(text, "arrows", rng)


# --- clocks: face colour × hour ---------------------------------------------------------------
_CLOCK_CLASSES = list(product(vocab.CLOCK_COLOURS, range(1, 13)))  # (face colour, hour)


def _clock_sample(label, rng, split):
    colour, hour = _CLOCK_CLASSES[label]
    bg = _background(rng, colour)
    size = "small" if rng.random() < 0.5 else "large"
    r = rng.uniform(*vocab.CLOCK_SIZES[size])
    room = max(0.0, 0.47 - r)  # the case stays inside the image
    style = _pick(rng, list(vocab.CLOCK_STYLES))
    trim = _pick(rng, list(vocab.CLOCK_TRIMS))
    hands = vocab.CLOCK_COLOURS[colour]
    return {"hour": hour, "fg_name": colour, "bg_name": bg, "hands_name": hands, "size": size,
            "style": style, "trim_name": trim,
            "fg": _jitter(vocab.COLOURS[colour], rng), "bg": _jitter(vocab.COLOURS[bg], rng),
            "hands": _jitter(vocab.COLOURS[hands], rng, 8), "trim": _jitter(vocab.CLOCK_TRIMS[trim], rng, 8),
            "cx": 0.5 + rng.uniform(-room, room), "cy": 0.5 + rng.uniform(-room, room), "r": r,
            "angle": 30.0 * (hour % 12) + rng.uniform(-3, 3)}


def _clock_caption(p, rng):
    word = vocab.HOUR_WORDS[p["hour"] - 1]
    time = _word(rng, f"{word} o'clock", [f"{p['hour']}:00", f"{p['hour']} o'clock"])
    obj = f"{p['fg_name']} clock showing {time}"
    text = _pick(rng, vocab.CLOCK_TEMPLATES).format(
        obj=obj, a_obj=article(obj), time=time, fg=p["fg_name"], bg=p["bg_name"], a_bg=article(p["bg_name"]),
        hands=p["hands_name"], size=p["size"], a_size=article(p["size"]), style=p["style"],
        a_style=article(p["style"]), trim=p["trim_name"], a_trim=article(p["trim_name"]),
        part=vocab.CLOCK_STYLES[p["style"]])
    return _finish(text, "clocks", rng)


DEFAULT_DOMAINS = ("shapes", "digits", "textures", "arrows")
DOMAINS: dict[str, Domain] = {
    "shapes": Domain("shapes", [f"{c} {s}" for c, s in _SHAPE_CLASSES], vocab.SHAPE_PROMPTS,
                     _shape_sample, draw.draw_shape, _shape_caption, mixed_format="a {c} shape"),
    "digits": Domain("digits", [f"{vocab.DIGIT_WORDS[d]} in {ink} ink" for ink, d in _DIGIT_CLASSES],
                     vocab.DIGIT_PROMPTS, _digit_sample, draw.draw_digit, _digit_caption,
                     mixed_format="the digit {c}"),
    "textures": Domain("textures", [f"{a} and {b} {t}" for (a, b), t in _TEXTURE_CLASSES],
                       vocab.TEXTURE_PROMPTS, _texture_sample, draw.draw_texture, _texture_caption,
                       mixed_format="a pattern of {c}"),
    "arrows": Domain("arrows", [f"{c} arrow pointing {d}" for c, d in _ARROW_CLASSES], vocab.ARROW_PROMPTS,
                     _arrow_sample, draw.draw_arrow, _arrow_caption, mixed_format="a {c}"),
    "clocks": Domain("clocks", [f"{c} clock showing {vocab.HOUR_WORDS[h - 1]} o'clock" for c, h in _CLOCK_CLASSES],
                     vocab.CLOCK_PROMPTS, _clock_sample, draw.draw_clock, _clock_caption, mixed_format="a {c}"),
}
