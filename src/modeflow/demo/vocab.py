"""Words of the demo pool: colours, per-domain caption templates and synonyms, noise captions.

Every domain's templates repeat a few domain words (shape / handwritten digit / pattern / arrow),
so a sentence embedder puts the domains in separate clusters, while synonyms and template choice
keep captions varied. Clean captions have at least three words and six characters and read as
English to fastText; tests/test_demo.py checks all three on generated pools.
"""

from __future__ import annotations

# name → RGB; drawn colours are jittered a little around these.
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 40, 170),
    "pink": (245, 120, 190),
    "black": (15, 15, 15),
    "white": (245, 245, 245),
    "brown": (120, 70, 30),
    "gray": (128, 128, 128),
}
PAPER = {"white": (250, 250, 248), "cream": (245, 235, 205), "gray": (215, 215, 215)}
INK = {"black": (20, 20, 25), "blue": (25, 40, 140), "dark gray": (70, 70, 70)}

SHAPES = {
    "circle": ["circle", "round circle", "disc"],
    "square": ["square", "box shape", "square"],
    "triangle": ["triangle", "triangle"],
    "star": ["star", "five pointed star"],
    "cross": ["cross", "plus sign"],
    "diamond": ["diamond", "rhombus"],
}
SHAPE_TEMPLATES = [
    "a {fg} {shape} on a {bg} background",
    "a simple drawing of a {fg} {shape} shape",
    "flat vector graphic of a {fg} {shape} shape",
    "a geometric shape: a {fg} {shape} over {bg}",
    "an illustration of a {fg} {shape} shape icon",
    "clip art of a geometric {shape} in {fg} on {bg}",
    "the outline of a {shape} shape filled with {fg}",
]
SHAPE_PROMPTS = ["a {c}.", "a drawing of a {c}.", "a {c} shape.", "a geometric {c} shape."]

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DIGIT_TEMPLATES = [
    "a handwritten digit {word}",
    "scanned handwriting of the number {num}",
    "the number {word} written by hand",
    "a low resolution scan of a handwritten {num}",
    "handwritten numeral {num} in {ink} ink on {paper} paper",
    "a handwritten {word}, a sample for digit recognition",
    "the digit {num} written with a pen",
]
DIGIT_PROMPTS = ["a handwritten digit {c}.", "the number {c} written by hand.",
                 "a scan of the handwritten number {c}."]

TEXTURES = {
    "horizontal stripes": ["horizontal stripes", "horizontal bands"],
    "vertical stripes": ["vertical stripes", "vertical bands"],
    "diagonal stripes": ["diagonal stripes", "slanted stripes"],
    "checkerboard": ["checkerboard", "checkered squares", "chess board"],
    "polka dots": ["polka dots", "round spots"],
    "grid": ["grid", "grid of thin lines"],
    "speckles": ["speckles", "random speckles", "static noise"],
}
TEXTURE_TEMPLATES = [
    "a repeating pattern of {pattern} in {fg} and {bg}",
    "a seamless texture with {pattern}",
    "a {fg} and {bg} background texture of {pattern}",
    "fabric with a printed pattern of {pattern}",
    "an abstract wallpaper pattern with {pattern}",
    "close up of a textile texture showing {pattern}",
    "the pattern of this tile is {pattern}",
]
TEXTURE_PROMPTS = ["a pattern of {c}.", "a texture of {c}.", "a background with {c}."]

ARROWS = {  # class name → (angle in degrees, caption phrases for the direction)
    "arrow pointing up": (90, ["up", "upwards", "to the top"]),
    "arrow pointing down": (270, ["down", "downwards", "to the bottom"]),
    "arrow pointing left": (180, ["left", "to the left"]),
    "arrow pointing right": (0, ["right", "to the right"]),
    "arrow pointing up and right": (45, ["up and to the right", "to the upper right corner"]),
    "arrow pointing up and left": (135, ["up and to the left", "to the upper left corner"]),
    "arrow pointing down and left": (225, ["down and to the left", "to the lower left corner"]),
    "arrow pointing down and right": (315, ["down and to the right", "to the lower right corner"]),
}
ARROW_TEMPLATES = [
    "a {fg} arrow pointing {dir}",
    "an arrow sign that points {dir}",
    "a direction arrow icon pointing {dir} on {bg}",
    "a thick {fg} arrow that shows the way {dir}",
    "a simple arrow drawing, the arrow points {dir}",
    "a {fg} arrow on a {bg} background pointing {dir}",
]
ARROW_PROMPTS = ["an {c}.", "a picture of an {c}.", "a sign with an {c}."]

# The mixed task names classes of every domain in one list; these prompts fit all of them.
MIXED_PROMPTS = ["a picture of {c}.", "an image showing {c}.", "{c}."]

# Non-English captions, full sentences, per domain (they describe the image, in another language).
FOREIGN = {
    "shapes": [
        "une forme géométrique colorée dessinée sur un fond uni",
        "eine bunte geometrische Form auf einem einfarbigen Hintergrund",
        "una forma geométrica de color sobre un fondo liso",
        "una forma geometrica colorata su uno sfondo semplice",
        "uma forma geométrica colorida desenhada sobre um fundo liso",
    ],
    "digits": [
        "un chiffre écrit à la main sur une feuille de papier",
        "eine handgeschriebene Ziffer auf einem Blatt Papier",
        "un número escrito a mano en una hoja de papel",
        "una cifra scritta a mano su un foglio di carta",
        "een met de hand geschreven cijfer op een vel papier",
    ],
    "textures": [
        "un motif qui se répète sur un tissu aux couleurs vives",
        "ein sich wiederholendes Muster auf einem Stoff mit kräftigen Farben",
        "un patrón que se repite en una tela con colores vivos",
        "un motivo che si ripete su un tessuto dai colori vivaci",
        "um padrão que se repete num tecido com cores vivas",
    ],
    "arrows": [
        "une flèche qui indique la direction à suivre",
        "ein Pfeil, der die Richtung zeigt, in die man gehen soll",
        "una flecha que indica la dirección que hay que seguir",
        "una freccia che indica la direzione da seguire",
        "een pijl die de richting aangeeft die je moet volgen",
    ],
}

# Too short for DataComp's basic filter (> 2 words and > 5 characters).
SHORT = ["img", "photo", "pic", "image", "jpg", "DSC", "icon", "thumb", "file", "img 2", "pic 1"]
