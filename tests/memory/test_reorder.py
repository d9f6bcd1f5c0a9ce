"""Lost-in-the-middle reordering: the best at both ends."""

from memorylab.memory.reorder import reorder_for_context


def langchain_long_context_reorder(documents):
    """LangChain's LongContextReorder (langchain_community.document_transformers), as the reference."""
    documents = list(documents)
    documents.reverse()
    out = []
    for i, value in enumerate(documents):
        if i % 2 == 1:
            out.append(value)
        else:
            out.insert(0, value)
    return out


def test_best_at_both_ends():
    assert reorder_for_context([1, 2, 3, 4, 5]) == [1, 3, 5, 4, 2]
    assert reorder_for_context([1, 2, 3, 4, 5, 6]) == [1, 3, 5, 6, 4, 2]
    assert reorder_for_context("abcdefg") == list("acegfdb")


def test_matches_langchain_for_odd_lengths():
    for n in (1, 3, 5, 7, 9):
        items = list(range(n))
        assert reorder_for_context(items) == langchain_long_context_reorder(items)


def test_even_lengths_keep_the_best_first():
    # LangChain puts rank 2 first and rank 1 last for even lengths; here rank 1 always opens the context.
    assert langchain_long_context_reorder([1, 2, 3, 4]) == [2, 4, 3, 1]
    assert reorder_for_context([1, 2, 3, 4]) == [1, 3, 4, 2]


def test_small_and_odd_inputs():
    assert reorder_for_context([]) == []
    assert reorder_for_context([7]) == [7]
    assert reorder_for_context([1, 2]) == [1, 2]
    items = [object() for _ in range(10)]
    out = reorder_for_context(iter(items))  # any iterable, nothing lost, nothing duplicated
    assert sorted(map(id, out)) == sorted(map(id, items))
