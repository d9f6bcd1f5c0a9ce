"""Seed derivation: one independent random stream per concern.

Every part of the world (people, splits, paraphrase choices, biographies, canaries, document order) draws
from its own stream derived from (seed, label...). Changing one knob, say the number of paraphrases or of
canaries, therefore leaves every other part of the world unchanged, which keeps runs comparable across
sweeps. The derivation goes through SHA-256 rather than Python's `hash()`, which is salted per process.
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(seed: int, *labels: object) -> int:
    """A 64-bit seed determined only by `seed` and the labels' text, identical on every machine."""
    key = ":".join([str(int(seed)), *(str(label) for label in labels)])
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


def rng_for(seed: int, *labels: object) -> random.Random:
    return random.Random(derive_seed(seed, *labels))
