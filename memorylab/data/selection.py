"""Deterministic subsets: which items of a long list an evaluation reads when it cannot read them all."""

from __future__ import annotations


def strided(n: int, at_most: int) -> list[int]:
    """At most `at_most` indices evenly spread over range(n), deterministic, first index 0."""
    return list(range(n)) if n <= at_most else [i * n // at_most for i in range(at_most)]
