"""MemoryStore: durability, the mirror, history, isolation, pagination, filters, listeners, bulk load."""

import subprocess
import sys
import textwrap

import lancedb
import numpy as np
import pytest

from memorylab.memory.records import MemoryRecord
from memorylab.memory.store import MemoryNotFound, MemoryQueryError, MemoryStore

DIM = 8  # the store is agnostic of the embedder; small vectors keep these tests fast


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def rec(text: str, tenant: str = "t1", agent: str = "a1", id: str = "", created_at: float = 0.0, **kw) -> MemoryRecord:
    return MemoryRecord(id=id, tenant=tenant, agent=agent, text=text, created_at=created_at, updated_at=0.0, **kw)


@pytest.fixture
def store(tmp_path):
    return MemoryStore(tmp_path / "mem", dim=DIM)


class Recorder:
    def __init__(self):
        self.events = []

    def on_upsert(self, record):
        self.events.append(("upsert", record.id, record.text))

    def on_delete(self, record):
        self.events.append(("delete", record.id, record.text))


def test_add_get_update_delete_and_history(store):
    r = store.add(rec("Jo lives in Oslo.", subject="Jo", attribute="residence", metadata={"session": 1}), vec(1))
    assert len(r.id) == 32 and r.created_at > 0 and r.updated_at == r.created_at
    assert store.get("t1", "a1", r.id) == r
    old, new = store.update("t1", "a1", r.id, "Jo lives in Rome.", vec(2), source="s2")
    assert old == r and new.text == "Jo lives in Rome." and new.created_at == r.created_at
    assert (new.subject, new.attribute, new.metadata, new.source) == ("Jo", "residence", {"session": 1}, "s2")
    deleted = store.delete("t1", "a1", r.id, source="s3")
    assert deleted == new and store.get("t1", "a1", r.id) is None and store.count() == 0
    history = store.history("t1", "a1", r.id)
    assert [(h.event, h.old_text, h.new_text) for h in history] == [
        ("ADD", None, "Jo lives in Oslo."), ("UPDATE", "Jo lives in Oslo.", "Jo lives in Rome."),
        ("DELETE", "Jo lives in Rome.", None)]
    assert [h.source for h in history] == ["", "s2", "s3"]
    with pytest.raises(MemoryNotFound, match=r.id):
        store.update("t1", "a1", r.id, "x", vec(3))
    with pytest.raises(KeyError):  # MemoryNotFound is a KeyError too
        store.delete("t1", "a1", r.id)
    with pytest.raises(MemoryNotFound, match="nope"):
        store.history("t1", "a1", "nope")


def test_reopen_restores_everything_and_the_mirror_equals_the_table(tmp_path):
    path = tmp_path / "mem"
    s = MemoryStore(path, dim=DIM)
    a = s.add(rec("one", metadata={"k": "v"}), vec(1))
    b = s.add(rec("two", tenant="t2", agent="a2"), vec(2))
    c = s.add(rec("three"), vec(3))
    s.update("t1", "a1", a.id, "one, updated", vec(4))
    s.delete("t1", "a1", c.id)
    again = MemoryStore(path, dim=DIM)
    assert again.records("t1", "a1") == s.records("t1", "a1")
    assert again.records("t2", "a2") == [b]
    assert again.history("t1", "a1", c.id) == s.history("t1", "a1", c.id)
    assert again.history("t1", "a1", a.id) == s.history("t1", "a1", a.id)
    hit, score = again.dense_search("t1", "a1", vec(4), 1)[0]
    assert hit.text == "one, updated" and score == pytest.approx(1.0, abs=1e-5)
    # The LanceDB table itself holds the same live records (read independently of the store).
    table = lancedb.connect(str(path)).open_table("memories").to_arrow().to_pylist()
    live = {row["id"]: row["text"] for row in table if not row["deleted"]}
    assert live == {a.id: "one, updated", b.id: "two"}
    assert {row["id"] for row in table if row["deleted"]} == {c.id}


def test_a_write_is_durable_when_the_process_is_killed_right_after(tmp_path):
    path = tmp_path / "mem"
    script = textwrap.dedent(f"""
        import os, numpy as np
        from memorylab.memory.records import MemoryRecord
        from memorylab.memory.store import MemoryStore
        s = MemoryStore({str(path)!r}, dim={DIM})
        r = s.add(MemoryRecord(id="m1", tenant="t", agent="a", text="kept", created_at=0, updated_at=0),
                  np.ones({DIM}, np.float32))
        s.update("t", "a", "m1", "kept, updated", np.arange({DIM}, dtype=np.float32) + 1)
        s.add(MemoryRecord(id="m2", tenant="t", agent="a", text="gone", created_at=0, updated_at=0),
              np.ones({DIM}, np.float32))
        s.delete("t", "a", "m2")
        os._exit(9)  # no cleanup, no flush at exit: only what the calls made durable survives
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stderr
    s = MemoryStore(path, dim=DIM)
    assert [r.text for r in s.records("t", "a")] == ["kept, updated"]
    assert [h.event for h in s.history("t", "a", "m2")] == ["ADD", "DELETE"]


def test_tenant_isolation_of_every_method(store):
    a = store.add(rec("secret of t1", id="shared-id"), vec(1))
    b = store.add(rec("secret of t2", tenant="t2", id="shared-id"), vec(1))  # same agent name and id, other tenant
    assert store.get("t2", "a1", "shared-id") == b and store.get("t1", "a1", "shared-id") == a
    assert store.get("t3", "a1", "shared-id") is None
    assert [r.text for r in store.records("t2", "a1")] == ["secret of t2"]
    assert [r.text for r, _ in store.dense_search("t2", "a1", vec(1), 10)] == ["secret of t2"]
    assert [r.text for r in store.list("t2", "a1")[0]] == ["secret of t2"]
    assert store.records("t3", "a1") == [] and store.dense_search("t3", "a1", vec(1), 5) == []
    assert store.count("t1") == 1 and store.count("t2", "a1") == 1 and store.count(agent="a1") == 2
    store.update("t2", "a1", "shared-id", "t2 changed", vec(2))
    assert store.get("t1", "a1", "shared-id").text == "secret of t1"
    store.delete("t2", "a1", "shared-id")
    assert store.get("t1", "a1", "shared-id") == a
    assert [h.event for h in store.history("t1", "a1", "shared-id")] == ["ADD"]
    with pytest.raises(MemoryNotFound):
        store.update("t3", "a1", "shared-id", "x", vec(1))
    with pytest.raises(MemoryNotFound):
        store.delete("t3", "a1", "shared-id")
    with pytest.raises(MemoryNotFound):
        store.history("t3", "a1", "shared-id")


def test_a_store_written_with_global_agent_ids_reopens_tenant_scoped(tmp_path):
    # Stores written before agents were scoped to tenants hold one tenant per agent id (the first writer
    # owned it); every row already carries its tenant, so they open unchanged: the owner keeps its agent,
    # and another tenant's use of that id is an agent of its own, written beside it and kept on reopening.
    old = MemoryStore(tmp_path / "m", dim=DIM)
    kept = old.add(rec("t1 was here", tenant="t1", agent="a1"), vec(1))
    del old
    store = MemoryStore(tmp_path / "m", dim=DIM)
    assert store.records("t1", "a1") == [kept] and store.records("t2", "a1") == []
    theirs = store.add(rec("t2 is here too", tenant="t2", agent="a1"), vec(2))
    reopened = MemoryStore(tmp_path / "m", dim=DIM)
    assert reopened.records("t1", "a1") == [kept] and reopened.records("t2", "a1") == [theirs]


def test_list_pages_in_stable_order_with_an_opaque_cursor(store):
    made = [store.add(rec(f"m{i}", created_at=100.0 + i // 2), vec(i)) for i in range(7)]  # ties on created_at
    expected = sorted(made, key=lambda r: (r.created_at, r.id))
    pages, cursor = [], None
    while True:
        page, cursor = store.list("t1", "a1", limit=3, cursor=cursor)
        pages.append(page)
        if cursor is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r for p in pages for r in p] == expected
    # A cursor is a position: deleting a listed record does not shift the next page.
    first, cursor = store.list("t1", "a1", limit=3)
    store.delete("t1", "a1", first[0].id)
    assert store.list("t1", "a1", limit=3, cursor=cursor)[0] == expected[3:6]
    with pytest.raises(MemoryQueryError, match="cursor"):
        store.list("t1", "a1", cursor="not-a-cursor")
    with pytest.raises(MemoryQueryError, match="limit"):
        store.list("t1", "a1", limit=0)


def test_dense_search_ranks_by_cosine_and_filters(store):
    store.add(rec("a", source="s1", subject="Jo", attribute="residence", metadata={"session": 1}), vec(1))
    store.add(rec("b", source="s2", subject="Jo", attribute="employer", metadata={"session": 2}), vec(2))
    store.add(rec("c", source="s2", subject="Al", attribute="employer"), vec(3))
    hits = store.dense_search("t1", "a1", vec(2), 3)
    assert hits[0][0].text == "b" and hits[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert {r.text for r, _ in store.dense_search("t1", "a1", vec(1), 5, {"source": "s2"})} == {"b", "c"}
    jo_employer = {"subject": "Jo", "attribute": "employer"}
    assert [r.text for r, _ in store.dense_search("t1", "a1", vec(1), 5, jo_employer)] == ["b"]
    assert [r.text for r, _ in store.dense_search("t1", "a1", vec(1), 5, {"session": 1})] == ["a"]
    assert [r.text for r, _ in store.dense_search("t1", "a1", vec(1), 5, {"metadata.session": 2})] == ["b"]
    assert store.dense_search("t1", "a1", vec(1), 5, {"metadata.colour": "red"}) == []
    with pytest.raises(MemoryQueryError, match="'sorce'"):
        store.dense_search("t1", "a1", vec(1), 5, {"sorce": "s2"})
    with pytest.raises(MemoryQueryError, match="shape"):
        store.dense_search("t1", "a1", np.ones(DIM + 1), 5)


def test_ids_with_quotes_and_odd_characters(store):
    odd = ["it's", 'say "hi"', "x'); DROP TABLE memories; --", "back\\slash", "ünï'cödé"]
    for i, memory_id in enumerate(odd):
        store.add(rec(f"text {i}", tenant="o'brien", agent='ag"ent', id=memory_id), vec(i))
    for i, memory_id in enumerate(odd):
        store.update("o'brien", 'ag"ent', memory_id, f"new {i}", vec(i + 10))
    store.delete("o'brien", 'ag"ent', odd[0])
    again = MemoryStore(store.path, dim=DIM)
    assert {r.id: r.text for r in again.records("o'brien", 'ag"ent')} == {m: f"new {i}" for i, m in enumerate(odd) if i}
    assert again.count() == len(odd) - 1


def test_readding_a_deleted_id_continues_its_history(store):
    store.add(rec("first", id="m"), vec(1))
    store.delete("t1", "a1", "m")
    store.add(rec("second", id="m"), vec(2))
    assert store.get("t1", "a1", "m").text == "second"
    assert [h.event for h in store.history("t1", "a1", "m")] == ["ADD", "DELETE", "ADD"]
    assert [h.event for h in MemoryStore(store.path, dim=DIM).history("t1", "a1", "m")] == ["ADD", "DELETE", "ADD"]
    with pytest.raises(MemoryQueryError, match="already exists"):
        store.add(rec("third", id="m"), vec(3))


def test_listeners_replay_and_follow_writes(store):
    a = store.add(rec("a"), vec(1))
    seen = Recorder()
    store.add_listener(seen)
    assert seen.events == [("upsert", a.id, "a")]
    b = store.add(rec("b"), vec(2))
    store.update("t1", "a1", a.id, "a2", vec(3))
    store.delete("t1", "a1", b.id)
    assert seen.events[1:] == [("upsert", b.id, "b"), ("upsert", a.id, "a2"), ("delete", b.id, "b")]


def test_a_failing_listener_does_not_fail_the_write(store):
    class Broken:
        def on_upsert(self, record):
            raise RuntimeError("index down")

        on_delete = on_upsert

    store.add_listener(Broken())
    r = store.add(rec("still stored"), vec(1))
    assert store.get("t1", "a1", r.id) is not None


def test_bad_inputs_name_the_field(store):
    with pytest.raises(MemoryQueryError, match="tenant"):
        store.add(rec("x", tenant=""), vec(1))
    with pytest.raises(MemoryQueryError, match="empty text"):
        store.add(rec("  "), vec(1))
    with pytest.raises(MemoryQueryError, match="zero"):
        store.add(rec("x"), np.zeros(DIM))
    with pytest.raises(MemoryQueryError, match="metadata"):
        store.add(rec("x", metadata={"f": object()}), vec(1))


def nested(depth: int) -> dict:
    """Metadata whose objects and lists nest `depth` levels, the metadata object itself included."""
    inner: list = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"k": inner}


@pytest.mark.parametrize("metadata,message", [
    (nested(33), "deeper than 32"), (nested(600), "deeper than 32"),
    ({"score": float("nan")}, "NaN"), ({"x": [1.0, float("inf")]}, "Infinity"),
])
def test_metadata_that_could_not_be_read_back_is_refused(store, metadata, message):
    # Stored, 600 levels made every later read of the memory fail (pydantic's serialization depth), and NaN or
    # Infinity came back as null; refused, nothing is written and what was stored is untouched.
    kept = store.add(rec("kept", metadata={"ok": 1}), vec(1))
    with pytest.raises(MemoryQueryError, match=message):
        store.add(rec("x", metadata=metadata), vec(2))
    with pytest.raises(MemoryQueryError, match=message):
        store.update("t1", "a1", kept.id, "changed", vec(3), metadata=metadata)
    assert [(r.text, r.metadata) for r in store.records("t1", "a1")] == [("kept", {"ok": 1})]
    assert [(r.text, r.metadata) for r in MemoryStore(store.path, dim=DIM).records("t1", "a1")] == [("kept", {"ok": 1})]


def test_metadata_32_levels_deep_is_stored_and_read_back(store):
    r = store.add(rec("deep", metadata=nested(32)), vec(1))
    assert MemoryStore(store.path, dim=DIM).get("t1", "a1", r.id).metadata == nested(32)


def test_bulk_load_of_10k_rows_is_one_write_and_searchable(tmp_path):
    store = MemoryStore(tmp_path / "mem", dim=384)
    n = 10_000
    vectors = np.random.default_rng(0).standard_normal((n, 384)).astype(np.float32)
    records = [rec(f"memory {i}", agent=f"a{i % 2}") for i in range(n)]
    table = lancedb.connect(str(tmp_path / "mem")).open_table("memories")
    before = len(table.list_versions())  # the empty table and its agent index
    stored = store.add_many(records, vectors)
    assert store.count() == n and store.count("t1", "a0") == n // 2
    assert len(table.list_versions()) == before + 1
    hit, score = store.dense_search("t1", "a1", vectors[1], 1)[0]
    assert hit.id == stored[1].id and score == pytest.approx(1.0, abs=1e-4)
    assert MemoryStore(tmp_path / "mem", dim=384).count() == n
