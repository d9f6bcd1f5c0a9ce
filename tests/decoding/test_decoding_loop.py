"""decode() driven by fake step functions: exact control over logits, no model needed."""

import pytest
import torch

from memorylab.decoding import decode, stop_token_ids
from memorylab.models.protocol import GenerationParams

V, PAD, EOS = 8, 0, 2


class Scripted:
    """Row r emits script[r][t] at step t (its last entry forever after); records every call."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def __call__(self, ids, mask, positions, past):
        t = 0 if past is None else past
        self.calls.append((ids.clone(), mask.clone(), None if positions is None else positions.clone()))
        logits = torch.zeros(ids.shape[0], V)
        for r in range(ids.shape[0]):
            row = self.script[r]
            logits[r, row[min(t, len(row) - 1)]] = 5.0
        return logits, t + 1


def fixed(probs):
    """A step that always returns the same distribution for every row."""
    logits = torch.log(torch.tensor(probs))

    def step(ids, mask, positions, past):
        return logits.expand(ids.shape[0], -1).clone(), past

    return step


def test_greedy_follows_the_largest_logit():
    step = Scripted([[3], [3]])
    out = decode(step, [[1, 4], [1]], GenerationParams(max_new_tokens=5), pad_id=PAD, eos_id=EOS)
    assert out == [[3] * 5, [3] * 5]
    assert len(step.calls) == 5  # the prompt, then one call per new token but the last (whose logits go unused)


def test_eos_ends_one_row_while_the_others_continue():
    step = Scripted([[4, 5, EOS, 6], [4, 4, 4, 4, 4, 7]])
    out = decode(step, [[1], [1]], GenerationParams(max_new_tokens=6), pad_id=PAD, eos_id=EOS)
    assert out == [[4, 5, EOS], [4, 4, 4, 4, 4, 7]]
    # The EOS itself is fed once (masked), then the finished row is fed padding, masked out.
    ids, mask, _ = step.calls[3]
    assert ids[0].tolist() == [EOS] and mask[0, -1] == 0 and mask[1, -1] == 1
    ids, mask, _ = step.calls[4]
    assert ids[0].tolist() == [PAD] and mask[0, -1] == 0 and mask[1, -1] == 1
    ids, mask, _ = step.calls[5]
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0] and mask[1].tolist() == [1] * 6
    assert len(step.calls) == 6


def test_stops_as_soon_as_every_row_is_done():
    step = Scripted([[5, EOS], [EOS]])
    out = decode(step, [[1], [1]], GenerationParams(max_new_tokens=50), pad_id=PAD, eos_id=EOS)
    assert out == [[5, EOS], [EOS]]
    assert len(step.calls) == 2


def test_stop_ids_end_a_row_and_are_kept():
    step = Scripted([[4, 6, 4], [4, 4, 7, 4]])
    params = GenerationParams(max_new_tokens=5)
    out = decode(step, [[1], [1]], params, pad_id=PAD, eos_id=EOS, stop_ids=[6, 7])
    assert out == [[4, 6], [4, 4, 7]]


def test_without_eos_it_runs_to_max_new_tokens():
    step = Scripted([[EOS]])
    assert decode(step, [[1]], GenerationParams(max_new_tokens=4), pad_id=PAD, eos_id=None) == [[EOS] * 4]


def test_left_padding_masks_and_positions():
    step = Scripted([[3], [3]])
    decode(step, [[1, 5], [1, 5, 6, 7]], GenerationParams(max_new_tokens=3), pad_id=PAD, eos_id=EOS)
    ids, mask, positions = step.calls[0]
    assert ids.tolist() == [[PAD, PAD, 1, 5], [1, 5, 6, 7]]
    assert mask.tolist() == [[0, 0, 1, 1], [1, 1, 1, 1]]
    # Real tokens are numbered from 0 in every row, as if each prompt were alone.
    assert positions[0, 2:].tolist() == [0, 1] and positions[1].tolist() == [0, 1, 2, 3]
    ids, mask, positions = step.calls[1]
    assert ids.tolist() == [[3], [3]] and positions.tolist() == [[2], [4]]
    assert mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    _, mask, positions = step.calls[2]
    assert positions.tolist() == [[3], [5]] and mask.shape == (2, 6)


def test_empty_inputs():
    step = Scripted([[3]])
    assert decode(step, [], GenerationParams(), pad_id=PAD, eos_id=EOS) == []
    assert step.calls == []
    with pytest.raises(ValueError, match="at least one token"):
        decode(step, [[1], []], GenerationParams(), pad_id=PAD, eos_id=EOS)


PROBS = [0.5, 0.3, 0.15, 0.05, 0, 0, 0, 0]


def _sample(params, rows=200):
    out = decode(fixed(PROBS), [[1]] * rows, params, pad_id=PAD, eos_id=None)
    return [t for row in out for t in row]


def test_top_p_samples_only_from_the_nucleus():
    seen = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, top_p=0.7, seed=0))
    assert set(seen) == {0, 1}  # 0.5 < 0.7 <= 0.5 + 0.3
    seen = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, top_p=0.9, seed=0))
    assert set(seen) == {0, 1, 2}
    seen = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, top_p=1.0, seed=0))
    assert set(seen) == {0, 1, 2, 3}  # zero-probability tokens are never drawn
    seen = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, top_p=0.01, seed=0))
    assert set(seen) == {0}  # the most likely token is always kept


def test_sampling_frequencies_follow_the_distribution():
    seen = _sample(GenerationParams(max_new_tokens=10, temperature=1.0, seed=1), rows=400)
    freq = [seen.count(t) / len(seen) for t in range(4)]
    assert freq == pytest.approx(PROBS[:4], abs=0.03)


def test_temperature_sharpens_and_seed_reproduces():
    cold = _sample(GenerationParams(max_new_tokens=5, temperature=0.05, seed=0))
    assert set(cold) == {0}
    a = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, seed=7))
    b = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, seed=7))
    c = _sample(GenerationParams(max_new_tokens=5, temperature=1.0, seed=8))
    assert a == b and a != c


def test_greedy_ignores_top_p_and_seed():
    step = fixed(PROBS)
    out = decode(step, [[1]], GenerationParams(max_new_tokens=3, top_p=0.1, seed=5), pad_id=PAD, eos_id=None)
    assert out == [[0, 0, 0]]


def test_stop_token_ids():
    vocab = ["a", "b\n", "\nc", "d.", "<|eos|>", "e"]
    assert stop_token_ids(vocab, ["\n"]) == [1, 2]
    assert stop_token_ids(vocab, ["\n", "."]) == [1, 2, 3]
    assert stop_token_ids(vocab, ["zz"]) == []
    assert stop_token_ids(vocab, []) == []


def test_near_zero_temperature_is_greedy_and_tiny_top_p_keeps_the_best_token():
    import torch

    from memorylab.decoding.loop import choose_token
    from memorylab.models.protocol import GenerationParams

    logits = torch.tensor([[0.1, 3.0, -1.0, 2.9]])
    assert GenerationParams(temperature=1e-7).greedy
    assert choose_token(logits, GenerationParams(temperature=1e-7), None).tolist() == [1]
    gen = torch.Generator().manual_seed(0)
    # top_p below float32's smallest value rounds to 0: the most likely token must still be kept.
    picks = {choose_token(logits, GenerationParams(temperature=1.0, top_p=1e-50), gen).item() for _ in range(20)}
    assert picks == {1}
