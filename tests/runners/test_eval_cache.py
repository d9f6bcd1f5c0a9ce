"""The evaluation cache computes once per key, and a changed model or setting is a new key."""

from __future__ import annotations

import os

from memorylab.runners.unlearning.evaluation_cache import cached, model_fingerprint


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
                        lambda scenario, data, model, name, units, figures=None: measured.append(name) or {None: name})
    for _ in range(2):
        for name in ("target", "retrain"):
            assert unlearning.evaluate_reusing(scenario, None, models[name], name, [None]) == {None: name}
    assert measured == ["target", "retrain"]  # measured once each, then served from the cache
    assert len(list((tmp_path / "cache").glob("*.pkl"))) == 2
