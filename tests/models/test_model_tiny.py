import pytest
import torch

from memorylab.models.tiny import build_tiny_model, count_parameters, tiny_llama_config
from memorylab.schema.common import TinyModelConfig

SMALL = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_position_embeddings=64)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_same_seed_same_weights_other_seed_differs(tokenizer):
    cfg = TinyModelConfig(**SMALL)
    a, b = _state(build_tiny_model(cfg, tokenizer, 7)), _state(build_tiny_model(cfg, tokenizer, 7))
    c = _state(build_tiny_model(cfg, tokenizer, 8))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_building_leaves_the_global_rng_alone(tokenizer):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_model(TinyModelConfig(**SMALL), tokenizer, 0)
    assert torch.equal(torch.rand(3), expected)


def test_config_follows_tiny_model_config(tokenizer):
    cfg = TinyModelConfig(**SMALL)
    model = build_tiny_model(cfg, tokenizer, 0)
    c = model.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads) == (32, 2, 4, 4)
    assert (c.intermediate_size, c.max_position_embeddings) == (64, 64)
    assert c.vocab_size == len(tokenizer)
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (
        tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert len(model.model.layers) == 2
    assert model.model.embed_tokens.weight.shape == (len(tokenizer), 32)
    assert model.model.layers[0].mlp.up_proj.out_features == 64
    # Tied by default: the head is the embedding matrix.
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    untied = build_tiny_model(TinyModelConfig(**SMALL, tie_word_embeddings=False), tokenizer, 0)
    assert untied.lm_head.weight.data_ptr() != untied.model.embed_tokens.weight.data_ptr()
    assert count_parameters(untied) == count_parameters(model) + 32 * len(tokenizer)


def test_grouped_query_attention(tokenizer):
    cfg = TinyModelConfig(**SMALL, num_kv_heads=2)
    assert tiny_llama_config(cfg, tokenizer).num_key_value_heads == 2
    model = build_tiny_model(cfg, tokenizer, 0).eval()
    attn = model.model.layers[0].self_attn
    head_dim = 32 // 4
    assert attn.q_proj.out_features == 4 * head_dim
    assert attn.k_proj.out_features == attn.v_proj.out_features == 2 * head_dim
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer("Alice was born", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))
    assert torch.isfinite(logits).all()


def test_bad_head_counts_fail_at_load_time():
    with pytest.raises(ValueError, match="divisible by num_kv_heads"):
        TinyModelConfig(**SMALL, num_kv_heads=3)
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TinyModelConfig(**{**SMALL, "num_heads": 5})
