import numpy as np
import pytest
import torch

from memorylab.decoding import decode
from memorylab.models import LM
from memorylab.models.backends.hf import HFLM
from memorylab.models.logits_lm import _cut_at_stop
from memorylab.models.protocol import GenerationParams

TEXTS = [
    "Alice was born in Paris, and works as a baker.",
    "Bob",
    "Really? Yes: since 1950!",
    "Carol was born in Lima.",
    "Eve works as a nurse, and Gustav as a pilot. Really?",
    "",
]
PROMPTS = ["Alice was", "Bob was born in Oslo, and works", "Eve", "Farah was born in Lima, and works as a nurse."]


def _manual_logprobs(lm, text):
    ids = [lm.start_id] + lm.encode([text])[0]
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, dim=-1)[:-1]
    return logp, torch.tensor(ids[1:])


def test_hflm_satisfies_the_protocol(lm):
    assert isinstance(lm, LM)


def test_token_logprobs_match_a_manual_forward(lm):
    out = lm.token_logprobs(TEXTS)
    assert len(out) == len(TEXTS)
    for text, got in zip(TEXTS, out):
        assert got.dtype == np.float64
        assert len(got) == len(lm.encode([text])[0])
        logp, targets = _manual_logprobs(lm, text)
        expected = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)
        assert np.all(got <= 0)


def test_batching_and_padding_do_not_change_scores(lm):
    together = lm.token_logprobs(TEXTS)  # six texts in batches of four, right-padded
    alone = [lm.token_logprobs([t])[0] for t in TEXTS]
    for a, b in zip(together, alone):
        np.testing.assert_allclose(a, b, atol=1e-5)
    reversed_ = lm.token_logprobs(TEXTS[::-1])[::-1]
    for a, b in zip(together, reversed_):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_moments_match_a_direct_computation(lm):
    for text, (chosen, mu, var) in zip(TEXTS, lm.token_logprob_moments(TEXTS)):
        logp, targets = _manual_logprobs(lm, text)
        p = logp.exp()
        exp_mu = (p * logp).sum(-1)
        exp_var = (p * (logp - exp_mu.unsqueeze(-1)) ** 2).sum(-1)
        np.testing.assert_allclose(chosen, logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).numpy(), atol=1e-5)
        np.testing.assert_allclose(mu, exp_mu.numpy(), atol=1e-4)
        np.testing.assert_allclose(var, exp_var.numpy(), atol=1e-3, rtol=1e-4)
        assert np.all(var >= 0)


def test_loglikelihood_is_the_continuation_part(lm):
    pairs = [("Alice was born in", " Paris"), ("Bob works as a", " pilot, since 1951."), ("Eve", " was"),
             ("", "Carol was born in Lima.")]
    got = lm.loglikelihood(pairs)
    for (ctx, cont), value in zip(pairs, got):
        n_ctx = len(lm.encode([ctx])[0])
        assert lm.encode([ctx + cont])[0] == lm.encode([ctx])[0] + lm.encode([cont])[0]
        whole = lm.token_logprobs([ctx + cont])[0]
        assert value == pytest.approx(float(whole[n_ctx:].sum()), abs=1e-4)
    assert lm.loglikelihood([("Alice", "")]) == [0.0]


def _hf_greedy(lm, prompt, n):
    ids = torch.tensor([[lm.start_id] + lm.encode([prompt])[0]])
    out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=n,
                            pad_token_id=lm.pad_id, eos_token_id=lm.tokenizer.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_greedy_matches_transformers_generate(lm):
    params = GenerationParams(max_new_tokens=12)
    for prompt in PROMPTS:
        ids = [lm.start_id] + lm.encode([prompt])[0]
        ours = decode(lm._step, [ids], params, pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id)[0]
        assert ours == _hf_greedy(lm, prompt, 12)
        assert lm.generate([prompt], params) == lm.decode([ours])


def test_batched_left_padded_generation_equals_one_prompt_at_a_time(lm):
    params = GenerationParams(max_new_tokens=12)
    seqs = [[lm.start_id] + ids for ids in lm.encode(PROMPTS)]
    assert len({len(s) for s in seqs}) == len(seqs)  # really different lengths, so rows are padded
    batched = decode(lm._step, seqs, params, pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id)
    alone = [decode(lm._step, [s], params, pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id)[0] for s in seqs]
    assert batched == alone
    assert batched == [_hf_greedy(lm, p, 12) for p in PROMPTS]
    # Through the backend too, with more prompts than one batch holds (batch_size is 4).
    prompts = PROMPTS + ["Carol", "Hiroko was born in Kyoto"]
    assert lm.generate(prompts, params) == [lm.generate([p], params)[0] for p in prompts]


def test_stop_strings_cut_the_output(lm):
    free = lm.generate(PROMPTS, GenerationParams(max_new_tokens=16))
    # Stop at a piece of text that each free continuation contains; the output ends right before it.
    for prompt, text in zip(PROMPTS, free):
        stop = text[4:6]
        assert len(stop) == 2
        cut = lm.generate([prompt], GenerationParams(max_new_tokens=16, stop=(stop,)))[0]
        assert stop not in cut
        assert cut == text[: text.find(stop)]
    assert _cut_at_stop("abc. def\nxyz", ("\n", ".")) == "abc"
    assert _cut_at_stop("abc", ("z",)) == "abc"


def test_a_stop_token_ends_generation_early(lm, monkeypatch):
    prompt = PROMPTS[1]
    ids = [lm.start_id] + lm.encode([prompt])[0]
    free = decode(lm._step, [ids], GenerationParams(max_new_tokens=16), pad_id=lm.pad_id,
                  eos_id=lm.tokenizer.eos_token_id)[0]
    stop = lm._vocab_texts[free[3]]
    first = next(j for j, t in enumerate(free) if stop in lm._vocab_texts[t])
    calls = []
    real_step = lm._step
    monkeypatch.setattr(lm, "_step", lambda *a: calls.append(1) or real_step(*a))
    text = lm.generate([prompt], GenerationParams(max_new_tokens=16, stop=(stop,)))[0]
    assert len(calls) == first + 1  # the prompt, then one step per kept token before the stop token
    assert text == _cut_at_stop(lm.decode([free[: first + 1]])[0], (stop,))


def test_sampling_is_reproducible_with_a_seed(lm):
    a = lm.generate(PROMPTS, GenerationParams(max_new_tokens=12, temperature=1.0, seed=3))
    b = lm.generate(PROMPTS, GenerationParams(max_new_tokens=12, temperature=1.0, seed=3))
    c = lm.generate(PROMPTS, GenerationParams(max_new_tokens=12, temperature=1.0, seed=4))
    assert a == b
    assert a != c


def test_one_prompt_twice_in_two_batches_gets_two_samples(lm):
    params = GenerationParams(max_new_tokens=12, temperature=1.0, seed=3)
    out = lm.generate([PROMPTS[0]] * (2 * lm.batch_size), params)  # one batch after another, same prompt
    first, second = out[: lm.batch_size], out[lm.batch_size:]
    assert first != second  # a fresh seed per batch gave the second batch the first one's samples
    assert lm.generate([PROMPTS[0]] * (2 * lm.batch_size), params) == out


def test_too_long_text_raises_a_sentence(lm):
    long_text = " ".join(["Alice was born in Paris"] * 40)
    assert len(lm.encode([long_text])[0]) >= lm.max_length
    with pytest.raises(ValueError, match=r"text 1 has \d+ tokens, over the model's 64-token context"):
        lm.token_logprobs(["Bob", long_text])
    with pytest.raises(ValueError, match="over the model's"):
        lm.token_logprob_moments([long_text])
    with pytest.raises(ValueError, match="over the model's"):
        lm.loglikelihood([(long_text, " Paris")])
    with pytest.raises(ValueError, match="over the model's"):
        lm.generate([long_text], GenerationParams(max_new_tokens=2))


def test_continuation_that_overflows_the_context_raises(lm):
    ctx = " ".join(["Alice was born in Paris"] * 3)
    cont = " " + " ".join(["Bob works as a pilot"] * 3)
    assert len(lm.encode([ctx])[0]) + 1 < lm.max_length < len(lm.encode([ctx + cont])[0]) + 1
    with pytest.raises(ValueError, match="over the model's"):
        lm.loglikelihood([(ctx, cont)])


def test_empty_batches(lm):
    assert lm.encode([]) == []
    assert lm.token_logprobs([]) == []
    assert lm.loglikelihood([]) == []
    assert lm.generate([], GenerationParams()) == []
    assert len(lm.token_logprobs([""])[0]) == 0


def test_load_from_a_saved_folder(lm, tmp_path):
    lm.model.save_pretrained(tmp_path)
    lm.tokenizer.save_pretrained(tmp_path)
    loaded = HFLM.load(str(tmp_path), device="cpu", batch_size=2)
    assert loaded.device == torch.device("cpu") and loaded.batch_size == 2
    assert loaded.max_length == lm.max_length and loaded.start_id == lm.start_id
    for a, b in zip(loaded.token_logprobs(TEXTS), lm.token_logprobs(TEXTS)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    params = GenerationParams(max_new_tokens=8)
    assert loaded.generate(PROMPTS, params) == lm.generate(PROMPTS, params)


@pytest.fixture(scope="module")
def gpt2_lm(tokenizer):
    # Learned absolute positions: unlike Llama's rotary ones (where a shift of every position changes
    # nothing), a left-padded row here gives a different answer unless position_ids skip the padding.
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return HFLM(model, tokenizer, batch_size=4, device="cpu")


def test_absolute_positions_skip_left_padding(gpt2_lm):
    lm = gpt2_lm
    params = GenerationParams(max_new_tokens=12)
    seqs = [[lm.start_id] + ids for ids in lm.encode(PROMPTS)]
    batched = decode(lm._step, seqs, params, pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id)
    assert batched == [_hf_greedy(lm, p, 12) for p in PROMPTS]
    together = lm.token_logprobs(TEXTS)
    for text, got in zip(TEXTS, together):
        np.testing.assert_allclose(got, lm.token_logprobs([text])[0], atol=1e-5)


def test_generation_may_fill_the_context_exactly(gpt2_lm):
    # The last new token lands on the last position of a learned position table (which has no row for
    # position max_length), so no step may ever be asked for a position past it.
    lm = gpt2_lm
    prompt = "Alice was born in Paris"
    room = lm.max_length - 1 - len(lm.encode([prompt])[0])
    out = decode(lm._step, [[lm.start_id] + lm.encode([prompt])[0]], GenerationParams(max_new_tokens=room),
                 pad_id=lm.pad_id, eos_id=None)
    assert len(out[0]) == room
