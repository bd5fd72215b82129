"""The embedded demo pool: an offline, seeded miniature web crawl with known ground truth.

Four visual domains by default (shapes, handwritten digits, textures, arrows: DEFAULT_DOMAINS)
whose captions cluster apart, and a fifth, opt-in one (clocks: face colour × hour, the hour hand
drawn at its angle) for new data added to a finished four-domain mixture; inside each, 40–48
compositional classes (colour × shape, ink × digit, colour pair × pattern, colour × direction,
face colour × hour); web noise of eight kinds; held-out zero-shot tasks with those fine-grained
classes (one per domain, and a mixed one over all of them) and a retrieval set. See pool.py for
the layout and demo.json's `structure` for the figures below, measured on every generated pool,
and shards.py for the pool written as img2dataset's webdataset shards (`modeflow demo-pool --shards`).

What it imitates of web image–text data (the structure MoDE exploits):
- many distinct concepts per semantic cluster, so a batch drawn from one cluster holds few
  same-class pairs (about 3 per row in a batch of 128 at the default size, against 21 when a
  domain had 6 classes): in-cluster negatives are hard (same domain, one attribute apart) but true;
- captions that carry several attributes (the class's two and others: background, size, position,
  thickness, paper, slant, scale) in varied templates, with synonyms, a leading label, words about
  where the image is used and a file / licence tail — exact repeats are rare (about 5% of clean
  captions at the default size, against 80% before);
- captions that describe the image only in part, in different orders, like alt text;
- web noise with known ground truth: mismatched and non-English captions, too-short captions,
  tiny and extreme-aspect images, dead links, corrupt bytes, duplicate images.

What it does not imitate:
- natural images, clutter, several objects per image, long-tailed class frequencies (classes are
  balanced) and a vocabulary of millions of words — its vocabulary is a few hundred;
- captions that are wrong in small ways (a clean caption is always true to its image; only the
  `mismatched` noise is wrong, and wholly);
- clusters that overlap: the domains separate cleanly in caption space, so clustering is
  easier than on a real crawl, and every caption is English apart from the `non_english` noise;
- scale: thousands of rows, not billions, so the experts see each class tens of times.
"""

from .domains import DEFAULT_DOMAINS, DOMAINS
from .noise import NOISE_KINDS
from .pool import URL_PREFIX, generate_demo_pool

__all__ = ["DEFAULT_DOMAINS", "DOMAINS", "NOISE_KINDS", "URL_PREFIX", "generate_demo_pool"]
