"""The evaluation cache computes once per key, and a changed model or setting is a new key."""

from __future__ import annotations

import os

from memorylab.evaluation import Evaluation
from memorylab.runners.unlearning.evaluation_cache import (cached, decode_evaluations, encode_evaluations,
                                                           model_fingerprint)


def test_same_key_is_computed_once(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"metrics": {"x": len(calls)}}

    key = {"model": "m", "eval": {"shots": 3}}
    assert cached(str(tmp_path), key, compute) == {"metrics": {"x": 1}}
    assert cached(str(tmp_path), dict(key), compute) == {"metrics": {"x": 1}}
    assert cached(str(tmp_path), {**key, "eval": {"shots": 1}}, compute) == {"metrics": {"x": 2}}
    assert cached(None, key, compute) == {"metrics": {"x": 3}}  # no folder: no cache
    assert not list(tmp_path.glob("*.tmp"))


def test_a_rewritten_model_changes_its_fingerprint(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"12345")
    before = model_fingerprint(str(tmp_path))
    (tmp_path / "model.safetensors").write_bytes(b"123456")
    os.utime(tmp_path / "model.safetensors", ns=(1, 1))
    assert model_fingerprint(str(tmp_path)) != before
    assert model_fingerprint("org/hub-id") == "org/hub-id"


def test_target_and_retrain_never_share_an_entry(tmp_path, monkeypatch):
    """The unlearning runner's key: two reference models measured alike get their own evaluations."""
    from memorylab.runners.unlearning import run as unlearning
    from memorylab.scenario import KINDS

    models = {}
    for name, size in (("target", 5), ("retrain", 6)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x" * size)
        models[name] = unlearning.Measured(str(folder))
    scenario = KINDS["unlearning"].schema.model_validate({
        "name": "u", "kind": "unlearning", "methods": [{"method": "npo"}],
        "reference": {"target": models["target"].path, "retrain": models["retrain"].path,
                      "evaluations": str(tmp_path / "cache")}})
    measured = []
    monkeypatch.setattr(unlearning, "evaluate_model",
                        lambda scenario, data, model, name, units, figures=None: measured.append(name) or {
                            None: Evaluation({"m": 1.0}, {"s": [name]}), ("p1",): Evaluation({"m": 0.5}, {}, {"r": [1]})})
    for _ in range(2):
        for name in ("target", "retrain"):
            got = unlearning.evaluate_reusing(scenario, None, models[name], name, [None])
            assert got == {None: Evaluation({"m": 1.0}, {"s": [name]}), ("p1",): Evaluation({"m": 0.5}, {}, {"r": [1]})}
    assert measured == ["target", "retrain"]  # measured once each, then served from the cache
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_entries_are_json_and_a_planted_pickle_is_never_read(tmp_path):
    """The cache folder may be shared: an entry is data, never code (a pickle runs code when loaded)."""
    import numpy as np

    value = {None: Evaluation({"x": np.float32(0.25)}, {"k": [{"a": np.int64(2)}]}, {"r": np.arange(3)})}
    cached(str(tmp_path), {"k": 1}, lambda: value, encode_evaluations, decode_evaluations)
    (entry,) = tmp_path.iterdir()
    assert entry.suffix == ".json"
    assert cached(str(tmp_path), {"k": 1}, lambda: None, encode_evaluations, decode_evaluations) == {
        None: Evaluation({"x": 0.25}, {"k": [{"a": 2}]}, {"r": [0, 1, 2]})}
    (tmp_path / (entry.stem + ".pkl")).write_bytes(b"cos\nsystem\n(S'touch pwned'\ntR.")
    assert cached(str(tmp_path), {"k": 1}, lambda: None, encode_evaluations, decode_evaluations) is not None
    assert not (tmp_path / "pwned").exists()
