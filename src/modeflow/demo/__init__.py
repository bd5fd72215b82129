"""The embedded demo pool: an offline, seeded miniature web crawl with known ground truth.

Visual domains (shapes, handwritten digits, textures, arrows) with captions that cluster apart,
web noise of eight kinds, and held-out zero-shot / retrieval tasks; see pool.py for the layout.
"""

from .domains import DOMAINS
from .noise import NOISE_KINDS
from .pool import URL_PREFIX, generate_demo_pool

__all__ = ["DOMAINS", "NOISE_KINDS", "URL_PREFIX", "generate_demo_pool"]
