"""RetrieverActor on a real local Ray: MiniLM from the offline wheel, LanceDB in a temporary folder."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import ray

from memorylab.actors import create_retriever_actor
from memorylab.scenario import ActorResources

DOCS = {
    "cat": "The cat sleeps on the warm windowsill all afternoon.",
    "rocket": "The rocket launch was delayed because of strong winds.",
    "bread": "She bakes sourdough bread every Sunday morning.",
    "o'brien": "Mr. O'Brien repaired the old bicycle in his garage.",  # an id with a quote
    'say "hi"': "The stock market fell sharply after the announcement.",
}
RES = ActorResources(num_cpus=0.5)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("lancedb"))


@pytest.fixture(scope="module")
def actors(ray_cluster, db_path):
    """Two actors on one folder, both started (in parallel) and holding the table before any write."""
    handles = [create_retriever_actor(db_path, RES, table="docs") for _ in range(2)]
    try:
        assert ray.get([h.count.remote() for h in handles], timeout=180) == [0, 0]
        yield handles
    finally:
        for h in handles:
            ray.kill(h)


@pytest.fixture(scope="module")
def retriever(actors):
    return actors[0]


def _call(handle, method, *args):
    return ray.get(getattr(handle, method).remote(*args), timeout=120)


def test_empty_table_searches_to_nothing(retriever):
    assert _call(retriever, "count") == 0
    assert _call(retriever, "search", "anything", 3) == []


def test_add_and_search_a_paraphrase(retriever):
    assert _call(retriever, "add", list(DOCS), list(DOCS.values())) == 5
    assert _call(retriever, "count") == 5
    hits = _call(retriever, "search", "A kitty naps by the sunny window in the afternoon.", 3)
    assert [h["id"] for h in hits][0] == "cat"
    assert hits[0]["text"] == DOCS["cat"]
    assert len(hits) == 3
    assert 0 < hits[0]["score"] <= 1 + 1e-6
    assert hits[0]["score"] > hits[1]["score"] >= hits[2]["score"]
    # An exact text is its own best match, at cosine ~1.
    exact = _call(retriever, "search", DOCS["bread"], 1)
    assert exact[0]["id"] == "bread" and exact[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_embeddings_are_unit_vectors(retriever):
    vectors = _call(retriever, "embed", ["one text", "another text"])
    assert vectors.shape == (2, 384)
    assert abs((vectors ** 2).sum(axis=1) - 1).max() < 1e-5


def test_ids_with_quotes_search_and_delete(retriever):
    hits = _call(retriever, "search", "Someone fixed an old bike in the garage.", 1)
    assert hits[0]["id"] == "o'brien"
    _call(retriever, "delete", ["o'brien", 'say "hi"'])
    assert _call(retriever, "count") == 3
    ids = {h["id"] for h in _call(retriever, "search", "Someone fixed an old bike in the garage.", 5)}
    assert ids == {"cat", "rocket", "bread"}
    _call(retriever, "delete", [])  # nothing to delete is not an error
    _call(retriever, "delete", ["no-such-id"])
    assert _call(retriever, "count") == 3


def test_add_checks_lengths(retriever):
    with pytest.raises(ray.exceptions.RayTaskError, match="2 ids for 1 texts"):
        _call(retriever, "add", ["a", "b"], ["only one"])
    assert _call(retriever, "add", [], []) == 0


def test_adding_an_id_again_replaces_its_text(retriever):
    new = "The cat now sleeps in a basket by the stove."
    assert _call(retriever, "add", ["cat", "cat"], ["a first draft about a cat", new]) == 2
    assert _call(retriever, "count") == 3
    hits = _call(retriever, "search", "Where does the cat sleep now?", 5)
    assert [h["text"] for h in hits if h["id"] == "cat"] == [new]
    _call(retriever, "add", ["cat"], [DOCS["cat"]])  # back as the other tests expect it
    assert _call(retriever, "count") == 3


def test_rows_survive_the_actor_and_other_actors_see_them(actors):
    """Writes are on disk when add() and delete() return: another actor on the folder, opened before them,
    sees exactly the rows left, also after the writer is gone."""
    first, second = actors
    assert _call(second, "count") == _call(first, "count") == 3
    ray.kill(first)
    assert _call(second, "count") == 3
    hits = _call(second, "search", "Space launch postponed due to wind.", 5)
    assert hits[0]["id"] == "rocket"
    assert {h["id"] for h in hits} == {"cat", "rocket", "bread"}  # the deleted rows stay deleted


# -- the actor's class in this process (no Ray): writers sharing a folder, erasure, top_k -------------------


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """Two RetrieverActors on one table, as two actors on one node would be (each opens its own lock file)."""
    from memorylab.actors.retriever_actor import RetrieverActor

    folder = str(tmp_path_factory.mktemp("shared"))
    return folder, RetrieverActor(folder, table="shared"), RetrieverActor(folder, table="shared")


def test_two_actors_upserting_the_same_ids_at_once_leave_one_row_each(pair):
    # Two concurrent merge-inserts of one new id both found it missing and both inserted it: duplicate rows.
    _, first, second = pair
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(actor, tag: str) -> None:
        try:
            for i in range(12):
                start.wait(timeout=60)  # both upserts of round i begin together
                actor.add([f"same{i}", f"{tag}{i}"], [f"{tag} wrote item {i}", f"{tag} alone {i}"])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(a, t)) for a, t in ((first, "A"), (second, "B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    ids = first.table.to_arrow().column("id").to_pylist()
    assert sorted(ids) == sorted({*ids}) and len(ids) == 36, sorted(ids)


def files_holding(folder: str, text: str) -> list[str]:
    return [str(f) for f in Path(folder).rglob("*") if f.is_file() and text.encode() in f.read_bytes()]


def test_delete_and_overwrite_erase_the_text_from_disk(pair):
    # A LanceDB delete only marks rows: the text stayed in the data files and in every older version.
    folder, actor, other = pair
    actor.add(["pin", "sky", "pw"], ["Ana's PIN is 4417-secret", "the sky is blue", "Bo's password is hunter2-x"])
    assert files_holding(folder, "4417-secret") and files_holding(folder, "hunter2-x")
    actor.delete(["pin"])
    actor.add(["pw"], ["Bo changed his password"])
    assert files_holding(folder, "4417-secret") == [] and files_holding(folder, "hunter2-x") == []
    # The other actor, whose table was at an older version, reads the compacted one.
    hits = other.search("Bo changed his password", 1)
    assert [(h["id"], h["text"]) for h in hits] == [("pw", "Bo changed his password")]
    assert "pin" not in {h["id"] for h in other.search("Ana's PIN", 50)}


def test_search_top_k_zero_is_empty_and_negative_is_refused(pair):
    _, actor, _ = pair
    assert actor.search("the sky", 0) == []
    with pytest.raises(ValueError, match="top_k must be >= 0, got -1"):
        actor.search("the sky", -1)
