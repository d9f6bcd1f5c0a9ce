import math

import torch

from memorylab.unlearn.sequence import nll, sequence_logprobs


def test_sequence_logprobs_match_a_token_by_token_computation(untrained_model, batch_of, forget_docs):
    texts = [forget_docs[0], "Alice"]  # very different lengths: the second row is mostly padding
    with torch.no_grad():
        sum_logp, n = sequence_logprobs(untrained_model, batch_of(texts))
    for row, text in enumerate(texts):
        ids = batch_of([text])["input_ids"][0]
        with torch.no_grad():
            logp = torch.log_softmax(untrained_model(input_ids=ids[None]).logits[0], -1)
        expected = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
        assert int(n[row]) == len(ids) - 1  # the first token (BOS) is context, never scored
        assert math.isclose(float(sum_logp[row]), expected, rel_tol=1e-5)


def test_nll_equals_the_models_own_loss(untrained_model, forget_batch):
    with torch.no_grad():
        assert torch.allclose(nll(untrained_model, forget_batch), untrained_model(**forget_batch).loss, atol=1e-5)
