"""The vllm backend: registered lazily (nothing imports vllm unless it is chosen), a clear one-line error when
it is chosen without vllm installed, and, only where vllm and a CUDA GPU exist, the LM protocol over vllm.LLM
against the hf backend, plus vLLM's own speculative decoding."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest
import torch

from memorylab.models.registry import BACKENDS, backend_class

HAS_VLLM = importlib.util.find_spec("vllm") is not None


def test_vllm_is_registered_as_a_lazy_string():
    assert BACKENDS["vllm"] == "memorylab.models.backends.vllm:VLLMLM"


def test_choosing_nothing_never_imports_vllm(tmp_path):
    # A stand-in vllm on the path, so the check means something whether or not the real one is installed.
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("raise ImportError('imported')\n")
    code = ("import sys, memorylab.models, memorylab.models.registry as r, memorylab.decoding.speculative, "
            "memorylab.decoding.drafter, memorylab.actors.model_actor; r.backend_class('hf'); "
            "assert not [m for m in sys.modules if m == 'vllm' or m.startswith('vllm.')]")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env)


@pytest.mark.skipif(HAS_VLLM, reason="vllm is installed here")
def test_choosing_vllm_without_it_is_one_clear_line():
    with pytest.raises(ImportError) as err:
        backend_class("vllm")
    message = str(err.value)
    assert "'vllm'" in message and "(vllm)" in message and "extra" in message and "\n" not in message


def test_a_checkpoint_with_a_reader_head_is_refused_by_vllm(tmp_path):
    # The head reads hidden states vLLM does not give: served by vLLM its answers would ignore the memories.
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("LLM = SamplingParams = None\n")
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "reader_head.json").write_text("{}")
    code = ("from memorylab.models.backends.vllm import VLLMLM\n"
            f"try:\n    VLLMLM.load({str(tmp_path / 'ckpt')!r}, device='cuda')\n"
            "except ValueError as e:\n    print(e)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=env, capture_output=True,
                         text=True).stdout
    assert "has a reader head" in out and "backend 'hf' only" in out


needs_vllm_and_gpu = pytest.mark.skipif(not HAS_VLLM or not torch.cuda.is_available(), reason="needs vllm and a GPU")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    """A tiny Llama whose head size (64) vLLM's attention kernels support."""
    from memorylab.models.tiny import build_tiny_model
    from memorylab.schema.common import TinyModelConfig

    cfg = TinyModelConfig(hidden_size=128, num_layers=2, num_heads=2, intermediate_size=256, vocab_size=300,
                          max_position_embeddings=128)
    path = tmp_path_factory.mktemp("vllm_model")
    build_tiny_model(cfg, tokenizer, seed=0).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.mark.gpu
@needs_vllm_and_gpu
def test_vllm_matches_hf(model_dir):
    from memorylab.models.backends.hf import HFLM
    from memorylab.models.protocol import GenerationParams

    lm = backend_class("vllm").load(model_dir, dtype="float32", gpu_memory_utilization=0.3)
    ref = HFLM.load(model_dir, device="cuda")
    texts = ["Alice of Paris works as", "Bob"]
    for ours, theirs in zip(lm.token_logprobs(texts), ref.token_logprobs(texts)):
        assert abs(ours - theirs).max() < 1e-2
    pairs = [("Alice of", " Paris"), ("Bob", " works")]
    assert abs(sum(lm.loglikelihood(pairs)) - sum(ref.loglikelihood(pairs))) < 5e-2
    params = GenerationParams(max_new_tokens=8)
    assert lm.generate(texts, params) == ref.generate(texts, params)
    # The served agent's side (TextGenerator): finish reasons, token log-probabilities, label log-probabilities.
    for ours, theirs in zip(lm.complete(texts, params, logprobs=3), ref.complete(texts, params, logprobs=3)):
        assert (ours.text, ours.finish_reason) == (theirs.text, theirs.finish_reason)
        assert [t.token for t in ours.tokens] == [t.token for t in theirs.tokens]
        assert max(abs(a.logprob - b.logprob) for a, b in zip(ours.tokens, theirs.tokens)) < 1e-2
        assert [a for a, _ in ours.tokens[0].top] == [a for a, _ in theirs.tokens[0].top]
    labels = [" A", " B"]
    for ours, theirs in zip(lm.label_logprobs(["Question: x\nAnswer:"], labels),
                            ref.label_logprobs(["Question: x\nAnswer:"], labels)):
        assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-2
    assert lm.count_tokens(texts) == ref.count_tokens(texts)


@pytest.mark.gpu
@needs_vllm_and_gpu
def test_vllm_speculative_decoding_keeps_greedy_output(model_dir):
    from memorylab.models.protocol import GenerationParams, SpeculativeParams

    vllm_lm = backend_class("vllm")
    plain = vllm_lm.load(model_dir, dtype="float32", gpu_memory_utilization=0.2)
    spec = vllm_lm.load(model_dir, dtype="float32", gpu_memory_utilization=0.2,
                        speculative=SpeculativeParams(drafter=model_dir, gamma=3))
    params = GenerationParams(max_new_tokens=12)
    texts = ["Alice of Paris works as", "Bob", "Carol"]
    assert spec.generate(texts, params) == plain.generate(texts, params)
