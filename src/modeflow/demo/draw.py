"""Pixels of the demo images, drawn from plain parameter dicts (no randomness in here).

Positions and sizes are fractions of the image side, so the same parameters draw a clean image,
its tiny noise twin, or a held-out test image at any size. Colours are RGB tuples.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

# Outline of each shape as (angle offset in degrees, radius factor) around its centre.
_SHAPE_VERTICES = {
    "square": [(45 + 90 * k, 1.0) for k in range(4)],
    "triangle": [(-90 + 120 * k, 1.1) for k in range(3)],
    "star": [(-90 + 36 * k, 1.1 if k % 2 == 0 else 0.45) for k in range(10)],
    # narrower than tall so a rotated square is never mistaken for it
    "diamond": [(-90, 1.1), (0, 0.62), (90, 1.1), (180, 0.62)],
}


def _canvas(size: int, bg) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (size, size), tuple(bg))
    return image, ImageDraw.Draw(image)


def _rotated(points, cx, cy, angle_deg):
    """Rotate (x, y) offsets by angle (counter-clockwise on screen) and move them to (cx, cy)."""
    a = math.radians(angle_deg)
    cos, sin = math.cos(a), math.sin(a)
    return [(cx + x * cos + y * sin, cy - x * sin + y * cos) for x, y in points]


def draw_shape(p: dict, size: int) -> np.ndarray:
    """p: shape, fg, bg, cx, cy, r (fractions of the side), rot (degrees)."""
    image, draw = _canvas(size, p["bg"])
    cx, cy, r = p["cx"] * size, p["cy"] * size, p["r"] * size
    shape = p["shape"]
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=tuple(p["fg"]))
    elif shape == "cross":
        w = 0.34 * r
        arms = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
                (-r, w), (-r, -w), (-w, -w)]
        draw.polygon(_rotated(arms, cx, cy, p["rot"]), fill=tuple(p["fg"]))
    else:
        pts = [(f * r * math.cos(math.radians(a)), f * r * math.sin(math.radians(a)))
               for a, f in _SHAPE_VERTICES[shape]]
        draw.polygon(_rotated(pts, cx, cy, p["rot"]), fill=tuple(p["fg"]))
    return np.asarray(image)


def draw_arrow(p: dict, size: int) -> np.ndarray:
    """p: angle (degrees, 0 = right, 90 = up), fg, bg, cx, cy, length, width (fractions)."""
    image, draw = _canvas(size, p["bg"])
    half, t = p["length"] * size / 2, p["width"] * size / 2
    head = 0.45 * 2 * half
    # Outline pointing right, centred on the origin; y grows downwards like the screen.
    outline = [(-half, -t), (half - head, -t), (half - head, -2.4 * t), (half, 0),
               (half - head, 2.4 * t), (half - head, t), (-half, t)]
    draw.polygon(_rotated(outline, p["cx"] * size, p["cy"] * size, p["angle"]), fill=tuple(p["fg"]))
    return np.asarray(image)


def texture_mask(p: dict, size: int) -> np.ndarray:
    """Boolean foreground mask of a pattern. p: pattern, period (fraction), phase (0..1), seed."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    period = max(p["period"] * size, 3.0)
    shift = p["phase"] * period
    half = period / 2
    pattern = p["pattern"]
    if pattern == "horizontal stripes":
        return ((yy + shift) // half) % 2 == 0
    if pattern == "vertical stripes":
        return ((xx + shift) // half) % 2 == 0
    if pattern == "diagonal stripes":
        return ((xx + yy + shift) // half) % 2 == 0
    if pattern == "checkerboard":
        return (((xx + shift) // half) + ((yy + shift) // half)) % 2 == 0
    if pattern == "polka dots":
        dx = (xx + shift) % period - half
        dy = (yy + shift) % period - half
        return dx * dx + dy * dy <= (0.32 * period) ** 2
    if pattern == "grid":
        line = max(1.0, period / 5)
        return ((xx + shift) % period < line) | ((yy + shift) % period < line)
    if pattern == "speckles":
        # random cells a third of a period wide, so they survive downscaling to the model's size;
        # their own generator: the speckles are part of the parameters, not of the caller's stream
        cell = max(period / 3, 1.0)
        cells = np.random.default_rng(p["seed"]).random((int(size // cell) + 1,) * 2) < 0.5
        return cells[(yy // cell).astype(int), (xx // cell).astype(int)]
    raise ValueError(f"unknown pattern {pattern!r}")


def blend(mask: np.ndarray, fg, bg) -> np.ndarray:
    """Mix two colours by a mask in [0, 1] (bool or float) → uint8 RGB."""
    a = mask.astype(np.float64)[..., None]
    out = a * np.asarray(fg, np.float64) + (1 - a) * np.asarray(bg, np.float64)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def draw_texture(p: dict, size: int) -> np.ndarray:
    return blend(texture_mask(p, size), p["fg"], p["bg"])


def draw_digit(p: dict, size: int) -> np.ndarray:
    """p: glyph (8x8 ink levels 0..16 from scikit-learn), scale, cx, cy (fractions), rot (degrees,
    counter-clockwise; 0 when absent), fg ink, bg paper."""
    side = max(2, round(p["scale"] * size))
    glyph = Image.fromarray(np.asarray(p["glyph"], np.float32) / 16.0, mode="F")
    glyph = glyph.resize((side, side), Image.BILINEAR).rotate(p.get("rot", 0.0), Image.BILINEAR)
    ink = np.asarray(glyph, np.float64).clip(0, 1)
    canvas = np.zeros((size, size))
    x0 = min(max(round(p["cx"] * size - side / 2), 0), size - side)
    y0 = min(max(round(p["cy"] * size - side / 2), 0), size - side)
    canvas[y0:y0 + side, x0:x0 + side] = ink[: size - y0, : size - x0]
    return blend(canvas, p["fg"], p["bg"])


def _clock_point(cx, cy, angle_deg, dist):
    """The point `dist` from (cx, cy) at a clock angle: 0 = twelve o'clock, clockwise."""
    a = math.radians(angle_deg)
    return cx + dist * math.sin(a), cy - dist * math.cos(a)


def _hand(cx, cy, angle_deg, back, length, base, tip):
    """A tapered hand from `back` behind the centre to `length` in front: base / tip widths."""
    a = math.radians(angle_deg)
    px, py = math.cos(a), math.sin(a)  # perpendicular to the hand's direction (sin a, -cos a)
    bx, by = _clock_point(cx, cy, angle_deg + 180, back)
    tx, ty = _clock_point(cx, cy, angle_deg, length)
    return [(bx + px * base / 2, by + py * base / 2), (tx + px * tip / 2, ty + py * tip / 2),
            (tx - px * tip / 2, ty - py * tip / 2), (bx - px * base / 2, by - py * base / 2)]


def draw_clock(p: dict, size: int) -> np.ndarray:
    """p: style ("wall clock": a thick frame, "watch face": a thin rim and a strap), fg (face),
    bg, hands (colour of hands and ticks), trim (frame / rim and strap colour), cx, cy, r (outer
    radius; fractions of the side), angle (the hour hand's clock angle in degrees, 0 = twelve).
    The minute hand always points at twelve (the hours are whole), so the hour is the short,
    thick hand; twelve ticks, the four quarter ones longer."""
    image, draw = _canvas(size, p["bg"])
    cx, cy, r = p["cx"] * size, p["cy"] * size, p["r"] * size
    trim, hands = tuple(p["trim"]), tuple(p["hands"])
    watch = p["style"] == "watch face"
    if watch:  # the strap, behind the case, across the whole image
        w = 0.55 * r
        draw.rectangle([cx - w, 0, cx + w, size], fill=trim)
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=trim)
    face = r * (0.9 if watch else 0.84)
    draw.ellipse([cx - face, cy - face, cx + face, cy + face], fill=tuple(p["fg"]))
    for k in range(12):
        quarter = k % 3 == 0
        inner = face * (0.72 if quarter else 0.82)
        width = max(1.0, face * (0.11 if quarter else 0.06))
        start, end = _clock_point(cx, cy, 30 * k, inner), _clock_point(cx, cy, 30 * k, face * 0.95)
        draw.line([start, end], fill=hands, width=round(width))
    draw.polygon(_hand(cx, cy, 0, 0.1 * face, 0.86 * face, max(1.0, 0.07 * face), max(1.0, 0.045 * face)),
                 fill=hands)  # minute hand, at twelve
    draw.polygon(_hand(cx, cy, p["angle"], 0.12 * face, 0.58 * face, max(1.5, 0.24 * face),
                       max(1.0, 0.14 * face)), fill=hands)  # hour hand
    cap = max(0.5, 0.1 * face)
    draw.ellipse([cx - cap, cy - cap, cx + cap, cy + cap], fill=hands)
    return np.asarray(image)
