"""Adaptive retrieval: the fixed policies, the confidence policy on a fake generator with set token
probabilities and on a tiny model that knows some people and not others, and the entropy router against a
hand-computed case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memorylab.memory.adaptive import (
    RetrievalDecision,
    RetrievalPolicy,
    certainty,
    granularity_weights,
    make_policy,
)
from memorylab.models.protocol import Completion, TokenLogprob


def test_always_and_never():
    for name, expected in (("always", True), ("never", False)):
        policy = make_policy(name)
        assert isinstance(policy, RetrievalPolicy)
        decision = policy.decide("Where was Alice born?")
        assert decision == RetrievalDecision(expected, name, None, decision.reason)
        assert decision.weights is None


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="unknown retrieval policy 'sometimes'"):
        make_policy("sometimes")


# -- confidence on a fake generator -----------------------------------------------------------------------

class FakeQA:
    """A TextGenerator with one token per character. `answers` maps a question to (answer, probability of each
    answer character); its completions carry those probabilities as the answer tokens' log-probabilities."""

    def __init__(self, answers: dict[str, tuple[str, list[float]]]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, list]] = []

    def count_tokens(self, texts):
        return [len(t) for t in texts]

    def complete(self, prompts, params, logprobs=None):
        self.calls.append(("complete", list(prompts)))
        assert params.greedy and params.stop == ("\n",) and logprobs == 0
        out = []
        for prompt in prompts:
            answer, probs = self.answers[prompt.removeprefix("Question: ").removesuffix("\nAnswer:")]
            assert len(probs) == len(answer)
            tokens = tuple(TokenLogprob(c, float(np.log(p))) for c, p in zip(answer, probs))
            out.append(Completion(answer, "stop", tokens))
        return out


def probs(answer: str, low: float, at: int = 1) -> list[float]:
    """0.99 for every character of the answer but one, which gets `low`."""
    p = [0.99] * len(answer)
    p[at] = low
    return p


ANSWERS = {
    "Where was Alice born?": (" Paris", probs(" Paris", 0.95)),  # known: every token likely
    "Where was Zed born?": (" Lima", probs(" Lima", 0.3)),  # new: one doubtful token
    "Who is Zed's mother?": ("", []),  # the model stops at once
}


def test_confidence_retrieves_when_any_answer_token_is_unlikely():
    policy = make_policy("confidence", generator=FakeQA(ANSWERS), threshold=0.8)
    known = policy.decide("Where was Alice born?")
    assert not known.retrieve and known.policy == "confidence" and known.score == pytest.approx(0.95)
    assert "' Paris'" not in known.reason and "'Paris'" in known.reason and ">= threshold 0.8" in known.reason
    new = policy.decide("Where was Zed born?")
    assert new.retrieve and new.score == pytest.approx(0.3) and "< threshold 0.8" in new.reason
    silent = policy.decide("Who is Zed's mother?")
    assert silent.retrieve and silent.score == 0.0
    lenient = make_policy("confidence", generator=FakeQA(ANSWERS), threshold=0.25)
    assert not lenient.decide("Where was Zed born?").retrieve


def test_confidence_mean_aggregate_dilutes_one_doubtful_token():
    # " Lima" is 5 tokens: (0.3 + 4 * 0.99) / 5 = 0.852; the mean hides the one doubtful token the minimum
    # catches (0.3 < 0.8).
    policy = make_policy("confidence", generator=FakeQA(ANSWERS), threshold=0.8, aggregate="mean")
    decision = policy.decide("Where was Zed born?")
    assert decision.score == pytest.approx(0.852) and not decision.retrieve


def test_confidence_batches_and_asks_in_the_qa_format():
    lm = FakeQA(ANSWERS)
    decisions = make_policy("confidence", generator=lm).decide_many(list(ANSWERS))
    assert [d.retrieve for d in decisions] == [False, True, True]
    assert [name for name, _ in lm.calls] == ["complete"]  # one call for all queries, answers and log-probabilities
    assert lm.calls[0][1][0] == "Question: Where was Alice born?\nAnswer:"


def test_confidence_setup_errors():
    with pytest.raises(ValueError, match="generator is required"):
        make_policy("confidence")
    with pytest.raises(ValueError, match="threshold must be a probability"):
        make_policy("confidence", generator=FakeQA({}), threshold=1.5)
    with pytest.raises(ValueError, match="aggregate must be one of min, mean"):
        make_policy("confidence", generator=FakeQA({}), aggregate="max")


# -- entropy ----------------------------------------------------------------------------------------------

def hand_certainty(p: list[float]) -> float:
    return 1 - (-sum(x * math.log(x) for x in p)) / math.log(len(p))


def test_entropy_router_on_a_hand_computed_case():
    # Temperature 1. turn [2, 0, 0]: softmax = [e^2, 1, 1] / (e^2 + 2) = [0.786986, 0.106507, 0.106507],
    # H = 0.665573, H / ln 3 = 0.605830, certainty 0.394170. session [1, 0]: softmax [0.731059, 0.268941],
    # H = 0.582203, H / ln 2 = 0.839942, certainty 0.160058. summary [0.5, 0.5, 0.5]: uniform, certainty 0.
    similarities = {"turn": [2.0, 0.0, 0.0], "session": [1.0, 0.0], "summary": [0.5, 0.5, 0.5]}
    e2 = math.exp(2)
    assert hand_certainty([e2 / (e2 + 2), 1 / (e2 + 2), 1 / (e2 + 2)]) == pytest.approx(0.394170, abs=1e-6)
    assert certainty([2.0, 0.0, 0.0], 1.0) == pytest.approx(0.394170, abs=1e-6)
    assert certainty([1.0, 0.0], 1.0) == pytest.approx(0.160058, abs=1e-6)
    assert certainty([0.5, 0.5, 0.5], 1.0) == pytest.approx(0.0, abs=1e-12)

    decision = make_policy("entropy", threshold=0.3, temperature=1.0).decide("q", similarities)
    assert decision.retrieve and decision.policy == "entropy"
    assert decision.score == pytest.approx(0.394170, abs=1e-6)
    total = 0.394170 + 0.160058
    assert decision.weights == pytest.approx({"turn": 0.394170 / total, "session": 0.160058 / total,
                                              "summary": 0.0}, abs=1e-6)
    assert "'turn'" in decision.reason
    quiet = make_policy("entropy", threshold=0.5, temperature=1.0).decide("q", similarities)
    assert not quiet.retrieve and quiet.weights == decision.weights


def test_entropy_uniform_everywhere_gives_equal_weights_and_no_retrieval():
    decision = make_policy("entropy").decide("q", {"turn": [0.3] * 5, "session": [0.1, 0.1], "summary": [0.9]})
    assert not decision.retrieve and decision.score == pytest.approx(0.0, abs=1e-12)
    assert decision.weights == pytest.approx({"turn": 1 / 3, "session": 1 / 3, "summary": 1 / 3})


def test_entropy_temperature_sharpens_cosine_gaps():
    # One clearly closer memory among cosines: flat at temperature 1, standing out at the default 0.1.
    cosines = {"turn": [0.8, 0.2, 0.25, 0.15, 0.2]}
    assert certainty(cosines["turn"], 1.0) < 0.05
    assert make_policy("entropy").decide("q", cosines).retrieve
    assert not make_policy("entropy", temperature=1.0).decide("q", cosines).retrieve


def test_entropy_input_errors():
    policy = make_policy("entropy")
    with pytest.raises(ValueError, match="similarities is required"):
        policy.decide("q")
    with pytest.raises(ValueError, match="similarities is empty"):
        policy.decide("q", {})
    with pytest.raises(ValueError, match=r"similarities\['turn'\] must be"):
        policy.decide("q", {"turn": [0.1, float("nan")]})
    with pytest.raises(ValueError, match="temperature must be > 0"):
        make_policy("entropy", temperature=0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        granularity_weights({"turn": [1.0]}, 0.0)


# -- confidence on a tiny model that knows some people ----------------------------------------------------

@pytest.fixture(scope="module")
def knowing_lm(tmp_path_factory):
    """A tiny Llama trained (250 steps, ~15 s on one core) on the QA pairs of a small world's retain people
    (the known people); the holdout people stand for the new people an agent is told about in sessions."""

    from memorylab.data import build_world
    from memorylab.data.prompts import qa_document
    from memorylab.models.backends.hf import HFLM
    from memorylab.models.tiny import build_tiny_model
    from memorylab.models.tokenizer import train_bpe_tokenizer
    from memorylab.models.trainer import train_causal_lm
    from memorylab.schema.common import TinyModelConfig, TrainConfig, WorldConfig

    world = build_world(WorldConfig(num_people=10, forget=1, holdout=4, canaries=0), seed=0)
    docs = [qa_document(q) for q in world.qa("retain")]
    tokenizer = train_bpe_tokenizer(docs, vocab_size=400)  # as in a scenario: new people's names are unseen
    cfg = TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128,
                          max_position_embeddings=128, vocab_size=400)
    model = build_tiny_model(cfg, tokenizer, seed=0)
    train = TrainConfig(steps=250, batch_size=16, seq_len=128, lr=3e-3, warmup_steps=10, checkpoint_every=10_000)
    train_causal_lm(model, tokenizer, docs, train, tmp_path_factory.mktemp("knowing"), seed=0, show_progress=False)
    return HFLM(model.eval(), tokenizer, batch_size=32), world


def test_confidence_retrieves_for_new_people_not_known_ones(knowing_lm):
    lm, world = knowing_lm
    policy = make_policy("confidence", generator=lm)
    known = policy.decide_many([q.question for q in world.qa("retain")])
    new = policy.decide_many([q.question for q in world.qa("holdout")])
    known_rate = np.mean([d.retrieve for d in known])
    new_rate = np.mean([d.retrieve for d in new])
    assert known_rate <= 0.1, [d.reason for d in known if d.retrieve]
    assert new_rate >= 0.8, [d.reason for d in new if not d.retrieve]
    assert np.median([d.score for d in known]) > np.median([d.score for d in new]) + 0.3


def test_confidence_cuts_a_question_too_long_for_the_context_to_its_end(knowing_lm):
    from memorylab.data.prompts import qa_prompt
    from memorylab.models.protocol import GenerationParams

    lm, world = knowing_lm
    question = world.qa("retain")[0].question
    long = " ".join(["Tell me, please, and be precise:"] * 60) + " " + question
    with pytest.raises(ValueError, match="context"):  # what the policy used to send: refused by the generator
        lm.generate([qa_prompt(long)], GenerationParams(max_new_tokens=16))
    policy = make_policy("confidence", generator=lm)
    (prompt,) = policy._prompts([long])
    assert prompt.endswith(question + "\nAnswer:") and lm.count_tokens([prompt])[0] <= lm.max_length - 1 - 16
    (decision,) = policy.decide_many([long])
    assert decision.policy == "confidence" and 0 <= decision.score <= 1
    # A short question is asked as it is, without a tokenization call to check it.
    calls = []
    policy.generator = type("Counting", (), {"count_tokens": lambda self, texts: calls.append(texts) or lm.count_tokens(texts)})()
    assert policy._prompts([question]) == [qa_prompt(question)] and calls == []
    policy.generator = lm
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        make_policy("confidence", generator=lm, max_prompt_tokens=8)
    # A budget the context cannot hold beside the answer's tokens (an agent's max_context_tokens as large as
    # the context) is cut to the room, as the answer's prompt is.
    roomy = make_policy("confidence", generator=lm, max_prompt_tokens=lm.max_length)
    assert roomy.max_prompt_tokens == lm.max_length - 1 - 16
    (decision,) = roomy.decide_many([long])
    assert 0 <= decision.score <= 1
