"""A batched decoding loop over a next-token-logits step function.

Written here rather than calling `transformers.generate` because the same loop must drive models that no
library generates from: the ULD-combined model (target logits minus the assistant's) and speculative
verification. A step takes left-padded ids and returns the last position's logits and a cache.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

from memorylab.models.protocol import GenerationParams

# step(input_ids, attention_mask, position_ids, past) -> (logits[B, V], past)
Step = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]]


def stop_token_ids(vocab_texts: Sequence[str], stop: Sequence[str]) -> list[int]:
    """Ids of tokens whose text contains a stop string: a row ends as soon as it emits one."""
    return [i for i, text in enumerate(vocab_texts) if any(s in text for s in stop)]


def choose_token(logits: torch.Tensor, params: GenerationParams, generator: Optional[torch.Generator]) -> torch.Tensor:
    """The next token of each row: the argmax when decoding greedily, else a draw from sampling_probs."""
    if params.greedy:
        return logits.argmax(dim=-1)
    return torch.multinomial(sampling_probs(logits, params), 1, generator=generator).squeeze(-1)


def sampling_probs(logits: torch.Tensor, params: GenerationParams) -> torch.Tensor:
    """The distribution a sampled token is drawn from (temperature, then top_p), over the last dimension; after
    top_p the kept mass is not renormalised (multinomial does not need it; speculative decoding divides)."""
    probs = torch.softmax(logits.float() / params.temperature, dim=-1)
    if params.top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the first token is always kept).
        keep = sorted_p.cumsum(-1) - sorted_p < params.top_p
        keep[..., 0] = True  # a top_p that rounds to 0 in float32 would otherwise keep nothing
        sorted_p = sorted_p * keep
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
    return probs


def left_padded(prompts: Sequence[Sequence[int]], pad_id: int,
                device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, positions) of prompts left-padded to one width: every row's next token is the last column."""
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (prepend BOS)")
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, p in enumerate(prompts):
        ids[row, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
        mask[row, width - len(p):] = 1
    ids, mask = ids.to(device), mask.to(device)
    # Positions count real tokens only, so a left-padded row sees the same positions as it would alone.
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


def enders(eos_id: Optional[int], stop_ids: Sequence[int], device: torch.device | str) -> torch.Tensor:
    """Ids that end a row: EOS and the stop tokens."""
    ids = set(stop_ids) | ({eos_id} if eos_id is not None else set())
    return torch.tensor(sorted(ids), dtype=torch.long, device=device)


def sampling_generator(params: GenerationParams, device: torch.device | str) -> Optional[torch.Generator]:
    """The seeded generator of a sampled generation (seed None means 0, so sampling is reproducible); None
    when greedy."""
    if params.greedy:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(params.seed if params.seed is not None else 0)
    return generator


@torch.inference_mode()
def decode(
    step: Step,
    prompts: Sequence[Sequence[int]],
    params: GenerationParams,
    *,
    pad_id: int,
    eos_id: Optional[int],
    stop_ids: Sequence[int] = (),
    device: torch.device | str = "cpu",
    generator: Optional[torch.Generator] = None,
) -> list[list[int]]:
    """Generate for every prompt (token ids) and return the new ids of each row, cut at EOS or a stop token
    (the stop token itself is kept so the caller can cut its text precisely). `generator`: the random state of
    a sampled generation that spans several calls (batches); None: a fresh one seeded from params."""
    if not prompts:
        return []
    ids, mask, positions = left_padded(prompts, pad_id, device)
    ender_tensor = enders(eos_id, stop_ids, device)
    generator = generator if generator is not None else sampling_generator(params, device)

    out: list[list[int]] = [[] for _ in prompts]
    done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    logits, past = step(ids, mask, positions, None)
    for t in range(params.max_new_tokens):
        nxt = choose_token(logits, params, generator)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        # Two conversions to lists a step, not one int() per row: each int() of a tensor element goes through
        # torch's dispatch, and per row that adds up to a noticeable share of a small model's step.
        for row, (token, ended) in enumerate(zip(nxt.tolist(), done.tolist())):
            if not ended:
                out[row].append(token)
        done |= torch.isin(nxt, ender_tensor)
        # No forward pass for logits that nobody will read: after the last token, or once every row ended.
        if bool(done.all()) or t == params.max_new_tokens - 1:
            break
        mask = torch.cat([mask, (~done).long().unsqueeze(-1)], dim=-1)
        positions = positions[:, -1:] + 1
        logits, past = step(nxt.unsqueeze(-1), mask, positions, past)
    return out
