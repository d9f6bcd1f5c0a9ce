"""Order retrieved memories for a long prompt: the best at both ends, the weakest in the middle."""

from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def reorder_for_context(items_best_first: Sequence[T]) -> list[T]:
    """Ranks 1, 3, 5, ... from the front, then ..., 6, 4, 2 to the back: [1, 3, 5, 4, 2] for five items.

    Why: language models use information at the start and at the end of a long context far better than
    information in its middle ("Lost in the Middle: How Language Models Use Long Contexts", Liu et al.,
    TACL 2024), so the strongest memories go where they are read and the weakest where they are skimmed.
    This is LangChain's LongContextReorder for an odd number of items; for an even number LangChain puts
    rank 2 first and rank 1 last, whereas here rank 1 always opens the context, so that a prompt cut short
    from the end still keeps the best memory.
    """
    items = list(items_best_first)
    return items[0::2] + items[1::2][::-1]
