"""RMU: its loss by hand, the parameters it may touch, and what it does to forget and retain text."""

from __future__ import annotations

import copy

import pytest
import torch
from pydantic import ValidationError

from memorylab.models.tiny import build_tiny_model
from memorylab.models.trainer import train_causal_lm
from memorylab.schema.common import TinyModelConfig, TrainConfig
from memorylab.unlearn.loop import unlearn
from memorylab.unlearn.method import UnlearnBatch
from memorylab.unlearn.rmu import RMU, activations, transformer_blocks
from memorylab.unlearn.sequence import nll


def test_the_loss_at_the_frozen_model_is_the_forget_distance_to_c_times_u(untrained_model, forget_batch,
                                                                          retain_batch):
    method = RMU(layer=1, steering_coeff=3.0, adaptive=False, retain_weight=50.0, direction_seed=7)
    batch = UnlearnBatch(forget_batch, retain_batch, reference=copy.deepcopy(untrained_model))
    with torch.no_grad():
        loss, stats = method.loss(untrained_model, batch)
        h = activations(untrained_model, forget_batch, 1)
    u = torch.rand(h.shape[-1], generator=torch.Generator().manual_seed(7))
    target = 3.0 * u / u.norm()
    mask = forget_batch["attention_mask"].bool()
    expected = ((h - target) ** 2)[mask].mean()  # padding is not a token of the text
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    assert stats["retain_mse"] == pytest.approx(0.0, abs=1e-10)  # the model is still the frozen one
    assert float(batch.cache["rmu_target"].norm()) == pytest.approx(3.0, rel=1e-5)


def test_adaptive_c_is_relative_to_the_frozen_activation_norm(untrained_model, forget_batch):
    batch = UnlearnBatch(forget_batch, reference=untrained_model)
    method = RMU(layer=0, steering_coeff=2.0, retain_weight=0)
    with torch.no_grad():
        method.loss(untrained_model, batch)
        norm = activations(untrained_model, forget_batch, 0)[forget_batch["attention_mask"].bool()].norm(dim=-1).mean()
    assert float(batch.cache["rmu_target"].norm()) == pytest.approx(2.0 * float(norm), rel=1e-5)


@pytest.fixture(scope="module")
def four_blocks(ul_tokenizer, forget_docs, retain_docs, tmp_path_factory):
    """A tiny model of four blocks trained on the sentences: RMU's default steers block 2 and updates 0 to 2."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=4, num_heads=4, num_kv_heads=2,
                                             intermediate_size=64, max_position_embeddings=64, vocab_size=300),
                             ul_tokenizer, seed=0)
    train_causal_lm(model, ul_tokenizer, forget_docs + retain_docs,
                    TrainConfig(steps=60, batch_size=8, seq_len=64, lr=1e-2, warmup_steps=5, checkpoint_every=1000),
                    tmp_path_factory.mktemp("four"), seed=0, show_progress=False)
    torch.set_num_threads(before)
    return model.eval()


def test_it_forgets_the_forget_text_keeps_the_retain_text_and_touches_only_the_chosen_mlps(
        four_blocks, ul_tokenizer, forget_docs, retain_docs, batch_of):
    model, before = copy.deepcopy(four_blocks), four_blocks
    method = RMU(steps=40, batch_size=4, seq_len=64, lr=1e-3)
    result = unlearn(model, ul_tokenizer, forget_docs, retain_docs, method, show_progress=False)
    assert result.stats[-1]["forget_mse"] < result.stats[0]["forget_mse"]
    changed = {name for (name, p), q in zip(model.named_parameters(), before.parameters()) if not torch.equal(p, q)}
    assert changed and changed == set(method.trainable(model))
    assert {name.split(".")[2] for name in changed} == {"0", "1", "2"} and all(".mlp." in n for n in changed)
    with torch.no_grad():
        forget_rise = float(nll(model, batch_of(forget_docs)) - nll(before, batch_of(forget_docs)))
        retain_rise = float(nll(model, batch_of(retain_docs)) - nll(before, batch_of(retain_docs)))
    assert forget_rise > 0.3 and retain_rise < forget_rise / 4, (forget_rise, retain_rise)


def test_default_layers_are_the_middle_block_and_the_two_before_it(untrained_model):
    blocks = len(transformer_blocks(untrained_model))
    method = RMU()
    assert method.steered_layer(untrained_model) == blocks // 2
    updated = {int(name.split(".")[2]) for name in method.trainable(untrained_model)}
    assert updated == set(range(max(0, blocks // 2 - 2), blocks // 2 + 1))


def test_bad_layers_are_refused(untrained_model):
    with pytest.raises(ValidationError, match="must not exceed layer 0"):
        RMU(layer=0, update_layers=[1])
    with pytest.raises(ValueError, match="the model has 2 blocks"):
        RMU(layer=5).steered_layer(untrained_model)
