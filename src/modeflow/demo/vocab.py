"""Words of the demo pool: colours, the attributes each domain's classes compose, caption
templates and synonyms, zero-shot prompts, and the noise captions.

A class is a composition of two attributes (colour × shape, ink × digit, colour × direction,
colour pair × pattern, face colour × hour), so every domain has dozens of concepts. Captions add
further attributes that are not part of the class (background, size, position, thickness, scale,
paper, clock style and trim) in varied templates, with an occasional synonym and web-style suffix,
so exact caption repeats are rare. Every template names its domain (a shape name, "handwritten",
"arrow", "pattern" / "texture", "clock"), so a sentence embedder still puts the domains in
separate clusters. Clean captions have at least
three words and six characters, read as English to fastText and fit the tiny model's 32-token
context; tests/test_demo.py checks all of this on generated pools.
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

# Web-style extras around the description: alt text often starts with a label, says where the
# image is used (words no pixel shows) and ends with the kind of file or licence.
PREFIXES = ["thumbnail", "preview", "image", "sample", "new", "gallery"]
PREFIX_RATE = 0.3
CONTEXTS = {  # per domain: where such an image would be used
    "shapes": ["for a kids learning game", "from a set of icons", "on a school worksheet",
               "used as a logo", "for a presentation slide", "on a sticker", "for a board game",
               "in a coloring book"],
    "digits": ["from a handwriting dataset", "on a school worksheet", "written in a notebook",
               "from a scanned form", "on a postal envelope", "from a math homework page",
               "on a sticky note", "from an old letter"],
    "textures": ["for a summer dress", "on a tablecloth", "for a website background",
                 "on gift wrap paper", "on a scarf", "for a phone case", "on a bed sheet",
                 "for a cushion cover"],
    "arrows": ["for a website button", "on a street sign", "in an app menu", "for a slide deck",
               "on a map", "on a parking lot sign", "in a user manual", "on a floor marking"],
    "clocks": ["in a kitchen", "for a time management blog", "on a classroom wall",
               "in a train station", "for a reminder app", "on a schedule poster",
               "in an office hallway", "for a bedtime routine chart"],
}
CONTEXT_RATE = 0.5
SUFFIXES = ["stock illustration", "free clip art", "vector image", "royalty free image",
            "high resolution image", "printable picture", "digital art", "flat design",
            "free download", "hd image"]
SUFFIX_RATE = 0.4
SYNONYM_RATE = 0.2  # share of attribute mentions that use a synonym instead of the class word

# --- shapes: colour × shape -------------------------------------------------------------------
SHAPE_COLOURS = ["red", "green", "blue", "yellow", "purple", "pink", "black", "white"]
SHAPES = {  # class word → synonyms
    "circle": ["disc", "round dot"],
    "square": ["box"],
    "triangle": ["three sided polygon"],
    "star": ["five pointed star"],
    "cross": ["plus sign"],
    "diamond": ["rhombus"],
}
# Where a small shape sits: name → (cx, cy) as fractions of the side; large ones are centred.
POSITIONS = {
    "top left": (0.28, 0.28), "top": (0.5, 0.28), "top right": (0.72, 0.28),
    "left": (0.28, 0.5), "center": (0.5, 0.5), "right": (0.72, 0.5),
    "bottom left": (0.28, 0.72), "bottom": (0.5, 0.72), "bottom right": (0.72, 0.72),
}
POSITION_PHRASES = {
    "top left": "in the top left corner", "top": "at the top", "top right": "in the top right corner",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left corner", "bottom": "at the bottom",
    "bottom right": "in the bottom right corner",
}
SHAPE_TEMPLATES = [  # {obj}: "red circle" (colour and shape word), {a_obj}: with its article
    "{a_size} {obj} on {a_bg} background",
    "a simple drawing of {a_obj} shape {pos}",
    "flat vector graphic of {a_size} {obj} shape on {bg}",
    "a geometric shape: {a_obj} over {bg}",
    "{a_obj} shape icon {pos}, {bg} background",
    "clip art of {a_size} {obj} {pos}",
    "{a_size} {obj}, a solid shape on plain {bg}",
    "{a_bg} background with {a_size} {obj} shape {pos}",
    "an icon of {a_obj} drawn on {bg}",
    "{a_size} {obj} shape, {fg} on {bg}",
]
SHAPE_PROMPTS = ["a {c}.", "a drawing of a {c}.", "a {c} shape.", "a geometric {c} shape."]

# --- digits: ink × digit ----------------------------------------------------------------------
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
INK = {"black": (20, 20, 25), "blue": (25, 45, 170), "red": (190, 25, 25), "green": (20, 120, 40)}
PAPER = {"white": (250, 250, 248), "cream": (245, 235, 205), "gray": (210, 210, 210),
         "yellow": (250, 240, 160)}
SLANTS = {"upright": 0.0, "slanted left": 14.0, "slanted right": -14.0}  # degrees, counter-clockwise
DIGIT_TEMPLATES = [  # {word}: "seven", {num}: "7"
    "a handwritten {word} in {ink} ink on {paper} paper",
    "the number {word} in {ink} ink, written by hand, {slant}",
    "scanned handwriting of the number {num} in {ink} ink on {paper} paper",
    "{a_size} handwritten digit {word} in {ink} ink, {slant}",
    "handwritten numeral {num} in {ink} ink on {paper} paper, {size}",
    "the digit {word} in {ink} ink on a sheet of {paper} paper",
    "a low resolution scan of {a_size} handwritten {num} in {ink} ink",
    "{ink} ink handwriting of the digit {word}, {slant}, on {paper} paper",
    "a handwritten {word} in {ink} ink, a sample for digit recognition",
    "{paper} paper with {a_size} handwritten {word} in {ink} ink",
    "{a_slant} handwritten {word} in {ink} ink",
    "{a_size}, {slant} digit {word} in {ink} ink written by hand",
]
DIGIT_PROMPTS = ["a handwritten {c}.", "the number {c}, written by hand.", "a scan of a handwritten {c}."]

# --- arrows: colour × direction ---------------------------------------------------------------
ARROW_COLOURS = ["red", "green", "blue", "yellow", "purple", "black"]
ARROWS = {  # direction → (angle in degrees, synonyms of "pointing <direction>")
    "up": (90, ["pointing upwards", "pointing to the top"]),
    "down": (270, ["pointing downwards", "pointing to the bottom"]),
    "left": (180, ["pointing to the left"]),
    "right": (0, ["pointing to the right"]),
    "up and right": (45, ["pointing to the upper right corner"]),
    "up and left": (135, ["pointing to the upper left corner"]),
    "down and left": (225, ["pointing to the lower left corner"]),
    "down and right": (315, ["pointing to the lower right corner"]),
}
ARROW_TEMPLATES = [  # {obj}: "red arrow pointing up"
    "{a_obj} on {a_bg} background",
    "{a_thick} {obj}",
    "a direction sign: {a_obj} on {bg}",
    "{a_obj}, {thick} line, {bg} background",
    "a simple arrow drawing of {a_thick} {obj}",
    "road sign with {a_obj} over {bg}",
    "{a_thick} arrow in {fg} on {bg}, {dir}",
    "an arrow icon: {a_obj}",
    "{a_bg} background with {a_thick} {obj}",
    "{a_length} {obj}, drawn with {a_thick} line",
    "{a_length}, {thick} {obj} on {bg}",
]
ARROW_LENGTHS = {"short": (0.5, 0.6), "long": (0.72, 0.85)}  # fraction of the side
ARROW_PROMPTS = ["a {c}.", "a picture of a {c}.", "a sign with a {c}."]

# --- clocks: face colour × hour (opt-in: not among the default domains) ----------------------
CLOCK_COLOURS = {"white": "black", "yellow": "black", "blue": "white", "red": "white"}  # face → hands
HOUR_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
              "eleven", "twelve"]  # HOUR_WORDS[hour - 1]
CLOCK_STYLES = {"wall clock": "frame", "watch face": "strap"}  # style → the trim part it has
CLOCK_TRIMS = {"black": (25, 25, 25), "silver": (175, 175, 185), "brown": (120, 70, 30)}
CLOCK_SIZES = {"small": (0.27, 0.32), "large": (0.37, 0.43)}  # outer radius, fraction of the side
CLOCK_TEMPLATES = [  # {obj}: "blue clock showing three o'clock"; {time}: "three o'clock" / "3:00"
    "{a_obj} on {a_bg} background",
    "{a_size} {obj}, {a_style} with {a_trim} {part}",
    "an analog {obj}, {hands} hands on {fg}",
    "{a_style} icon: {a_obj} over {bg}",
    "flat illustration of {a_size} {obj} on {bg}",
    "{a_bg} background with {a_obj}",
    "{a_obj}, drawn as {a_size} {style}",
    "the clock says {time}: {a_size} {fg} {style} with {hands} hands",
    "{a_size} {fg} clock face showing {time}, {trim} {part}",
    "a simple drawing of {a_obj} with {a_trim} {part}",
    "{a_obj}, {size} {style} on {bg}",
]
CLOCK_PROMPTS = ["a {c}.", "a picture of a {c}.", "a drawing of a {c}."]

# --- textures: colour pair × pattern ----------------------------------------------------------
TEXTURE_PAIRS = [("red", "white"), ("blue", "yellow"), ("black", "white"), ("green", "pink"),
                 ("purple", "orange"), ("black", "yellow")]
TEXTURES = {  # class word → synonyms
    "horizontal stripes": ["horizontal bands"],
    "vertical stripes": ["vertical bands"],
    "diagonal stripes": ["slanted stripes"],
    "checkerboard": ["checkered squares"],
    "polka dots": ["round spots"],
    "grid": ["grid of thin lines"],
    "speckles": ["random speckles"],
}
TEXTURE_TEMPLATES = [  # {obj}: "red and white polka dots"; {fg} / {bg}: which colour is which
    "a repeating pattern of {obj}",
    "a seamless texture with {scale} {fg} {pattern} on {bg}",
    "fabric with a printed pattern of {obj}",
    "{obj}, {a_scale} repeating pattern",
    "an abstract wallpaper pattern with {scale} {obj}",
    "close up of a textile texture showing {obj}",
    "the pattern of this tile is {obj}",
    "{fg} {pattern} on {a_bg} background texture",
    "a pattern of {obj}",
    "{a_scale} texture of {obj}",
]
TEXTURE_PROMPTS = ["a pattern of {c}.", "a texture of {c}.", "fabric with {c}."]
TEXTURE_SCALES = {"fine": (0.16, 0.22), "large": (0.28, 0.38)}  # period as a fraction of the side

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
    "clocks": [
        "une horloge ronde accrochée au mur qui indique l'heure",
        "eine runde Uhr an der Wand zeigt die volle Stunde an",
        "un reloj redondo en la pared que marca la hora en punto",
        "un orologio rotondo appeso al muro che segna l'ora esatta",
        "een ronde klok aan de muur die het hele uur aangeeft",
    ],
}

# Too short for DataComp's basic filter (> 2 words and > 5 characters).
SHORT = ["img", "photo", "pic", "image", "jpg", "DSC", "icon", "thumb", "file", "img 2", "pic 1"]


def article(phrase: str) -> str:
    """'a red circle', 'an orange square': the indefinite article for a phrase."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase
