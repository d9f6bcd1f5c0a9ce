import os
import subprocess
import sys
import textwrap

import pytest

from memorylab.models import registry
from memorylab.models.registry import BACKENDS, backend_class, load_lm, register_backend


@pytest.fixture
def scratch_backends(monkeypatch):
    """Restore BACKENDS after the test, whatever it registered."""
    monkeypatch.setattr(registry, "BACKENDS", dict(BACKENDS))
    return registry.BACKENDS


def test_hf_is_registered_and_resolves():
    from memorylab.models.backends.hf import HFLM

    assert backend_class("hf") is HFLM


def test_unknown_backend_lists_the_known_ones(scratch_backends):
    register_backend("dummy", "somewhere.else:Dummy")
    with pytest.raises(KeyError, match=r"unknown backend 'nope'; known backends: dummy, hf, vllm"):
        backend_class("nope")


@pytest.mark.parametrize("target", ["memorylab.models.backends.hf", "memorylab.models.backends.hf:", ":HFLM",
                                    "a:b:c", "", "memorylab.models. backends:HFLM"])
def test_register_backend_wants_module_colon_class(scratch_backends, target):
    with pytest.raises(ValueError, match="package.module:Class"):
        register_backend("bad", target)
    assert "bad" not in scratch_backends


def test_register_backend_then_load(scratch_backends, tmp_path, monkeypatch):
    (tmp_path / "fake_engine_backend.py").write_text(textwrap.dedent("""
        class Engine:
            @classmethod
            def load(cls, source, *, dtype, device, batch_size):
                return ("loaded", source, dtype, device, batch_size)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend("fake", "fake_engine_backend:Engine")
    assert load_lm("some/model", backend="fake", batch_size=3) == ("loaded", "some/model", "float32", "auto", 3)


def test_missing_module_names_the_missing_package(scratch_backends):
    register_backend("ghost", "memorylab_ghost_engine_xyz.backend:Ghost")
    with pytest.raises(ImportError, match=r"'ghost'.*memorylab_ghost_engine_xyz"):
        backend_class("ghost")


def test_missing_dependency_of_a_backend_is_named(scratch_backends, tmp_path, monkeypatch):
    # The backend's own module exists but imports an engine that is not installed (vllm's situation).
    (tmp_path / "needs_engine_backend.py").write_text("import not_installed_engine_xyz\nclass LM: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    register_backend("needy", "needs_engine_backend:LM")
    with pytest.raises(ImportError, match="not_installed_engine_xyz"):
        backend_class("needy")


def test_missing_class_is_named(scratch_backends):
    register_backend("typo", "memorylab.models.backends.hf:HFLMM")
    with pytest.raises(ImportError, match="HFLMM"):
        backend_class("typo")


def test_importing_models_does_not_import_vllm(tmp_path):
    # A stand-in vllm on the path, so the check means something whether or not the real one is installed.
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")
    code = ("import sys, memorylab.models, memorylab.models.backends.hf, memorylab.decoding; "
            "assert memorylab.models.backend_class('hf'); "
            "import importlib.util; assert importlib.util.find_spec('vllm') is not None; "
            "bad = [m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')]; "
            "assert not bad, bad")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)
