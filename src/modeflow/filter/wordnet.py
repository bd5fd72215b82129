"""DataComp's text_based rule: does a caption hold a word whose first WordNet synset is an
ImageNet-21k class (`baselines/apply_filter.py`: does_contain_text_entity)?

WordNet is read by NLTK from a local WordNet 3.0 database directory (`index.*`, `data.*`, `*.exc`:
Debian's `wordnet-base` puts them in /usr/share/wordnet), never downloaded (DataComp calls
`nltk.download("wordnet")`). Debian's copy lacks the `lexnames` file NLTK opens first; it is the
fixed list of WordNet 3.0's 45 lexicographer files, so it is served from here when absent.

As in DataComp: words are `caption.split()` as is (NLTK lower-cases and lemmatises them, "dog," with
its comma has no synset), the first synset is `wordnet.synsets(word)[0]` (nouns, then verbs,
adjectives, adverbs), and only its offset is compared with the list, whatever its part of speech.
"""

from __future__ import annotations

import io
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from modeflow.common.errors import ConfigError, InputDataError

# WordNet 3.0's lexnames(5WN): number, name, syntactic category
_LEXNAMES = [
    "adj.all 3", "adj.pert 3", "adv.all 4", "noun.Tops 1", "noun.act 1", "noun.animal 1", "noun.artifact 1",
    "noun.attribute 1", "noun.body 1", "noun.cognition 1", "noun.communication 1", "noun.event 1",
    "noun.feeling 1", "noun.food 1", "noun.group 1", "noun.location 1", "noun.motive 1", "noun.object 1",
    "noun.person 1", "noun.phenomenon 1", "noun.plant 1", "noun.possession 1", "noun.process 1",
    "noun.quantity 1", "noun.relation 1", "noun.shape 1", "noun.state 1", "noun.substance 1", "noun.time 1",
    "verb.body 2", "verb.change 2", "verb.cognition 2", "verb.communication 2", "verb.competition 2",
    "verb.consumption 2", "verb.contact 2", "verb.creation 2", "verb.emotion 2", "verb.motion 2",
    "verb.perception 2", "verb.possession 2", "verb.social 2", "verb.stative 2", "verb.weather 2",
    "adj.ppl 3",
]
LEXNAMES = "".join(f"{i:02d}\t{name.split()[0]}\t{name.split()[1]}\n" for i, name in enumerate(_LEXNAMES))
REQUIRED_FILES = tuple(f"{kind}.{pos}" for kind in ("index", "data") for pos in ("noun", "verb", "adj", "adv")) + \
    tuple(f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv"))
DEBIAN_WORDNET = "/usr/share/wordnet"


@lru_cache(maxsize=2)
def open_wordnet(directory: str = DEBIAN_WORDNET):
    """NLTK's WordNet reader over a local database directory (see the module docstring)."""
    import nltk.data
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    root = Path(directory).resolve()
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    if missing:
        raise ConfigError(f"WordNet database {directory}: missing {missing} (a WordNet 3.0 `dict` directory, "
                          "e.g. Debian's wordnet-base in /usr/share/wordnet)")
    has_lexnames = (root / "lexnames").is_file()
    if str(root) not in nltk.data.path:  # NLTK reads only below its data paths
        nltk.data.path.append(str(root))

    class _Reader(WordNetCorpusReader):
        def open(self, file):
            if file == "lexnames" and not has_lexnames:
                return io.StringIO(LEXNAMES)
            return super().open(file)

        def map_wn(self, version="wordnet"):
            return None  # the mapping onto NLTK's own downloaded WordNet serves only its multilingual data

    with warnings.catch_warnings():  # "multilingual functions are not available": not used here
        warnings.simplefilter("ignore")
        return _Reader(str(root), None)


def read_synset_list(path: str) -> frozenset[int]:
    """WordNet offsets of a synset-id list such as DataComp's imagenet21k_wordnet_ids.txt (one
    `n01440764` per line; DataComp keeps `int(line[1:])`)."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise ConfigError(f"synset list not found: {path}") from None
    offsets = set()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if len(line) < 2 or not line[1:].isdigit():
            raise InputDataError(f"{path}: line {number}: {line!r} is not a WordNet id like n01440764")
        offsets.add(int(line[1:]))
    if not offsets:
        raise InputDataError(f"{path}: no synset id")
    return frozenset(offsets)


class FirstSynsets:
    """word -> offset of its first WordNet synset (None without one), computed once per word."""

    def __init__(self, wordnet):
        self._wordnet = wordnet
        self._cache: dict[str, int | None] = {}

    def __call__(self, word: str) -> int | None:
        hit = self._cache.get(word, -1)
        if hit == -1:
            synsets = self._wordnet.synsets(word)
            hit = self._cache[word] = synsets[0].offset() if synsets else None
        return hit


def contains_entity(texts: Sequence[str], first_synset: FirstSynsets, entities: Iterable[int]) -> np.ndarray:
    """Per text: whether one of its whitespace-split words' first synset offset is in `entities`."""
    entities = frozenset(entities)
    import pandas as pd

    codes, uniq = pd.factorize(np.asarray(texts, dtype=object))
    hits = np.fromiter((any(first_synset(w) in entities for w in t.split()) for t in uniq), bool, len(uniq))
    return hits[codes] if len(texts) else np.zeros(0, bool)
