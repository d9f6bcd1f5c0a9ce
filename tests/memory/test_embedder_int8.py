"""The default embedder: MiniLM in int8 with per-channel scales (issue 19's search goals with the default), close
enough to float32 that retrieval is the same; and a store refuses an embedder other than the one that wrote it."""

from __future__ import annotations

import numpy as np
import pytest

from memorylab.errors import MemorylabError
from memorylab.memory.embedder import Embedder
from memorylab.serve.retriever import same_embedder

QUERIES = ["Where does Ann Bo live?", "What did Caroline research last week?", "Which instrument does Mel play?",
           "When did they go camping in the mountains?", "What is the name of Jo's dog?",
           "Who works as a nurse in Oslo?", "How long has Melanie been painting?", "What book did she recommend?"]


def test_int8_per_channel_vectors_stay_close_to_float32(embedder):
    int8 = Embedder(quantize=True)
    assert int8.name == "all-MiniLM-L6-v2 int8 per-channel" and embedder.name == "all-MiniLM-L6-v2 float32"
    cosines = np.sum(int8.embed(QUERIES) * embedder.embed(QUERIES), axis=1)
    # Per-tensor scales (torch's default qconfig) give about 0.95 on short queries, and lose recall; per-channel
    # about 0.98, with LoCoMo hybrid recall@10 that of float32.
    assert cosines.mean() > 0.97 and cosines.min() > 0.94, cosines
    same = [int(np.argmax(int8.embed([q]) @ embedder.embed(QUERIES).T)) for q in QUERIES]
    assert same == list(range(len(QUERIES)))


def test_a_store_keeps_the_embedder_that_wrote_it(tmp_path):
    same_embedder(tmp_path, "all-MiniLM-L6-v2 int8 per-channel", False)
    same_embedder(tmp_path, "all-MiniLM-L6-v2 int8 per-channel", True)  # the same one again: fine
    with pytest.raises(MemorylabError, match=r"embedder\.json: .* set memory\.retrieval\.quantize_embedder to true"):
        same_embedder(tmp_path, "all-MiniLM-L6-v2 float32", True)
    old = tmp_path / "old"  # written before stores recorded their embedder: float32, the default then
    old.mkdir()
    with pytest.raises(MemorylabError, match="quantize_embedder to false"):
        same_embedder(old, "all-MiniLM-L6-v2 int8 per-channel", True)
    assert not (old / "embedder.json").exists()
