"""The `vllm` backend: the LM protocol over `vllm.LLM` (extra `vllm`, GPU only).

Imported only when a scenario chooses `backend: vllm` (the registry holds it as a "module:Class" string), so
this module imports vllm at the top and choosing it without vllm fails with one sentence from the registry.
Written against vLLM's documented offline API (`LLM`, `SamplingParams`, token-id prompts, `prompt_logprobs`,
`speculative_config`); its tests run only where vllm and a CUDA GPU are present.

What differs from `hf`:
- Scoring reads prompt log-probs. vLLM returns the prompt token's log-prob plus the top `moments_top_k` at each
  position, not the whole distribution, so Min-K%++'s moments (E and Var of log p) are taken over those
  tokens only: an approximation that the hf backend does not make.
- There is no step API (`next_token_logits`): ULD's logit subtraction needs the hf backend.
- A served agent's calls (`complete` with token log-probabilities, `label_logprobs`) read vLLM's sampled-token
  logprobs and prompt logprobs; a label's log-probability is the prompt followed by that label, scored.
- Speculative decoding is vLLM's own, an engine setting: `load(..., speculative=SpeculativeParams(drafter=ID,
  gamma=N))` builds the engine with speculative_config {"model": ID, "num_speculative_tokens": N}; every
  generation then drafts. VocabTrim and adaptive gamma are this project's, not vLLM's.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import vllm

from memorylab.models.protocol import Completion, GenerationParams, TokenLogprob
from memorylab.models.reader_head import has_reader_head
from memorylab.models.token_budget import TokenBudget


class VLLMLM(TokenBudget):
    def __init__(self, llm: Any, *, batch_size: int = 32, speculative: Any = None, moments_top_k: int = 20) -> None:
        self.llm = llm
        self.tokenizer = llm.get_tokenizer()
        self.batch_size = batch_size  # vLLM batches by itself; kept for callers that read it
        self.speculative = speculative
        self.moments_top_k = moments_top_k
        start = self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token_id
        if start is None:
            raise ValueError("the tokenizer has neither a BOS nor an EOS token to start texts with")
        self.start_id, self.pad_id = start, start
        self.max_length = int(llm.llm_engine.model_config.max_model_len)

    @classmethod
    def load(cls, source: str, *, dtype: str = "float32", device: str = "auto", batch_size: int = 32,
             speculative: Any = None, **engine_kwargs: Any) -> "VLLMLM":
        if device not in ("auto", "cuda") and not str(device).startswith("cuda"):
            raise ValueError(f"the vllm backend runs on CUDA GPUs, not on {device!r}; use backend 'hf'")
        if has_reader_head(source):
            # The head reads the generator's hidden states, which vLLM does not give: answers would silently
            # ignore the memories the head was trained to read.
            raise ValueError(f"{source} has a reader head (models/reader_head.py), which runs with backend 'hf' "
                             f"only")
        if speculative is not None:
            if speculative.drafter is None or speculative.vocab is not None or speculative.adaptive:
                raise ValueError("vLLM speculative decoding needs a named drafter (SpeculativeParams.drafter) and "
                                 "supports neither VocabTrim (vocab) nor adaptive gamma")
            engine_kwargs["speculative_config"] = {"model": speculative.drafter,
                                                   "num_speculative_tokens": speculative.gamma}
        engine_kwargs.setdefault("max_logprobs", 20)
        return cls(vllm.LLM(model=source, dtype=dtype, **engine_kwargs), batch_size=batch_size,
                   speculative=speculative, moments_top_k=engine_kwargs["max_logprobs"])

    # -- tokens -------------------------------------------------------------------------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [self.tokenizer.decode(list(i), skip_special_tokens=True) for i in ids]

    # -- scoring ------------------------------------------------------------------------------------------
    def _prompt_logprobs(self, seqs: list[list[int]], top_k: int) -> list[list[dict]]:
        """Per sequence, per position 1..n-1, {token id: Logprob} (the actual token and the top k)."""
        params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=top_k)
        outs = self.llm.generate([{"prompt_token_ids": s} for s in seqs], params, use_tqdm=False)
        return [list(o.prompt_logprobs[1:]) for o in outs]  # position 0 has no context: None

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        seqs = [[self.start_id] + ids for ids in self.encode(texts)]
        return [np.array([pos[t].logprob for pos, t in zip(lps, s[1:])], dtype=np.float64)
                for lps, s in zip(self._prompt_logprobs(seqs, 0), seqs)]

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        seqs = [[self.start_id] + ids for ids in self.encode(texts)]
        out = []
        for lps, s in zip(self._prompt_logprobs(seqs, self.moments_top_k), seqs):
            chosen, mus, vars_ = [], [], []
            for pos, t in zip(lps, s[1:]):
                lp = np.array([v.logprob for v in pos.values()], dtype=np.float64)
                p = np.exp(lp)  # the returned tokens only: see the module docstring
                mu = float((p * lp).sum())
                chosen.append(pos[t].logprob)
                mus.append(mu)
                vars_.append(max(float((p * lp ** 2).sum()) - mu ** 2, 0.0))
            out.append((np.array(chosen), np.array(mus), np.array(vars_)))
        return out

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        contexts = [[self.start_id] + ids for ids in self.encode([c for c, _ in pairs])]
        seqs = [c + x for c, x in zip(contexts, self.encode([x for _, x in pairs]))]
        return [float(sum(pos[t].logprob for pos, t in list(zip(lps, s[1:]))[len(c) - 1:]))
                for lps, s, c in zip(self._prompt_logprobs(seqs, 0), seqs, contexts)]

    def next_token_logits(self, input_ids: Any, attention_mask: Any = None, past: Any = None) -> Any:
        raise NotImplementedError("the vllm backend has no step API; ULD and lockstep decoding need backend 'hf'")

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return [c.text for c in self.complete(prompts, params)]

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        """vLLM's completions with its finish reason and, when `logprobs` is given, its sampled-token
        log-probabilities and top alternatives (its `logprobs` sampling parameter)."""
        if params.speculative is not None and self.speculative is None:
            raise ValueError("vLLM speculative decoding is an engine setting: load the backend with speculative=...")
        sampling = vllm.SamplingParams(max_tokens=params.max_new_tokens, temperature=0.0 if params.greedy else
                                       params.temperature, top_p=params.top_p, seed=params.seed,
                                       stop=list(params.stop) or None, logprobs=logprobs)
        seqs = [{"prompt_token_ids": [self.start_id] + ids} for ids in self.encode(prompts)]
        out = []
        for result in self.llm.generate(seqs, sampling, use_tqdm=False):
            choice = result.outputs[0]
            tokens = None
            if logprobs is not None:
                tokens = tuple(_token(position, token, logprobs, self.decode)
                               for position, token in zip(choice.logprobs or [], choice.token_ids))
            out.append(Completion(choice.text, "length" if choice.finish_reason == "length" else "stop", tokens))
        return out

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        """Each label's log-probability as the prompt's next token, read from the prompt log-probabilities of the
        prompt followed by that label (vLLM's prefix cache shares the prompt between its labels)."""
        seqs, shape = [], []
        for prompt, ids in zip(prompts, self.encode(prompts)):
            label_ids = self.label_ids(prompt, labels)
            seqs.extend([self.start_id] + ids + [label] for label in label_ids)
            shape.append(label_ids)
        positions = iter(self._prompt_logprobs(seqs, 0))
        return [[float(next(positions)[-1][label].logprob) for label in label_ids] for label_ids in shape]


def _token(position: dict, token: int, top: int, decode: Any) -> TokenLogprob:
    """One sampled token from vLLM's {token id: Logprob} at its position (the token and the top `top`)."""
    def text(token_id: int) -> str:
        found = position.get(token_id)
        spelled = getattr(found, "decoded_token", None)
        return spelled if spelled is not None else decode([[token_id]])[0]

    ranked = sorted(((i, lp) for i, lp in position.items() if lp.rank is not None and lp.rank <= top),
                    key=lambda item: item[1].rank)
    return TokenLogprob(text(token), float(position[token].logprob),
                        tuple((text(i), float(lp.logprob)) for i, lp in ranked[:top]))
