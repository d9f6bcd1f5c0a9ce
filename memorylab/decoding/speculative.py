"""Speculative decoding (Leviathan et al. 2023, Chen et al. 2023): a small drafter proposes gamma tokens, the
model verifies all of them in one forward, and keeps the longest prefix it agrees with plus one token of its own.

Why it pays: decoding one token at a time reads all of the model's weights for one token; a verifying forward
over gamma + 1 positions reads them once for all, and so costs much less than gamma steps. Each round costs
gamma drafter steps and one verification, and emits 1..gamma+1 tokens.

Exactness. Greedy: a draft is kept while it equals the model's argmax at its position, and the token after
the kept prefix is the model's argmax there, so the tokens are the model's greedy tokens; EOS, stop tokens and
max_new_tokens cut a row exactly where plain decoding would. The verified logits come from a forward over
several positions instead of one, which rounds differently in the last float bits: a position whose top two
logits are within ~1e-5 may pick the other one. Such near-ties do not occur in the tests' models; a model
with exact ties (e.g. duplicated head rows) would need the plain loop for bit-identical output.
Sampling: a draft x ~ q is accepted with probability min(1, p(x)/q(x)), a rejected one is replaced by a draw
from norm(max(0, p - q)), and a round where every draft is kept adds a draw from p: each emitted token has
the model's distribution p (temperature and top_p applied to both p and q, as plain sampling applies them).

Caches. Both models keep their KV caches. Rows of a batch accept different numbers of drafts, so a rejected
draft is "rolled back" by masking its cache entry (positions count real tokens only, so what follows sees
exactly what a contiguous cache would give); entries rejected in every row, at the end, are cut off, which
for one row is a full rollback. The drafter lags one token behind when it proposed gamma drafts and all were
kept (it never saw its last draft): that token is fed with the next round's first drafter step.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from memorylab.decoding.lean_llama import LeanCache
from memorylab.decoding.loop import Step, choose_token, enders, left_padded, sampling_generator, sampling_probs
from memorylab.models.protocol import GenerationParams

# verify(input_ids (B, T), attention_mask (B, cached + T), position_ids (B, T), past) -> (logits (B, T, V), past)
Verify = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, Any], tuple[torch.Tensor, Any]]


@dataclass
class SpeculativeStats:
    rounds: int = 0
    row_rounds: int = 0  # rounds summed over the rows still generating in them
    drafted: int = 0  # drafts that the rows still generating could have used
    accepted: int = 0
    emitted: int = 0  # tokens generated, all rows
    gamma_sum: int = 0
    draft_seconds: float = 0.0
    verify_seconds: float = 0.0

    @property
    def acceptance_rate(self) -> float:
        return self.accepted / self.drafted if self.drafted else float("nan")

    def merged(self, other: "SpeculativeStats") -> "SpeculativeStats":
        return SpeculativeStats(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate,
                "mean_gamma": self.gamma_sum / self.rounds if self.rounds else float("nan"),
                # Tokens a row gets from one verification (the kept drafts and the model's own token).
                "tokens_per_round": 1 + self.accepted / self.row_rounds if self.row_rounds else float("nan")}


class GammaSchedule:
    """gamma for the next round: fixed, or (adaptive) the gamma in 1..max_gamma that maximises expected
    tokens per second, E(g) / (g * c_draft + c_verify) with E(g) = (1 - a^(g+1)) / (1 - a) (Leviathan et al.),
    where a is the recent acceptance rate and the c's the recent step times, all measured as exponential
    moving averages while decoding."""

    DECAY = 0.7  # weight of the past: a few rounds of memory

    def __init__(self, gamma: int, adaptive: bool, max_gamma: int) -> None:
        self.gamma, self.adaptive, self.max_gamma = gamma, adaptive, max_gamma
        self.rate: Optional[float] = None
        self.draft_s: Optional[float] = None
        self.verify_s: Optional[float] = None

    def update(self, drafted: int, accepted: int, draft_s_per_step: Optional[float], verify_s: float) -> None:
        if not self.adaptive or drafted == 0:
            return
        self.rate = _ema(self.rate, accepted / drafted, self.DECAY)
        self.draft_s = _ema(self.draft_s, draft_s_per_step, self.DECAY) if draft_s_per_step else self.draft_s
        self.verify_s = _ema(self.verify_s, verify_s, self.DECAY)
        if self.draft_s is None:
            return
        a = min(self.rate, 0.999)

        def speed(g: int) -> float:
            return (1 - a ** (g + 1)) / (1 - a) / (g * self.draft_s + self.verify_s)
        self.gamma = max(range(1, self.max_gamma + 1), key=speed)


def _ema(old: Optional[float], new: float, decay: float) -> float:
    return new if old is None else decay * old + (1 - decay) * new


def drop_last(cache: Any, count: int) -> None:
    """Cut the last `count` entries off a cache: a LeanCache, a transformers Cache, or a tuple of them (ULD)."""
    if count <= 0 or cache is None:
        return
    if isinstance(cache, tuple):
        for part in cache:
            drop_last(part, count)
    elif isinstance(cache, LeanCache):
        cache.drop_last(count)
    else:
        cache.crop(-count)  # transformers: a negative count removes that many tokens (4.x and 5.x alike)


def _cut_unused(mask: torch.Tensor, cache: Any) -> torch.Tensor:
    """Cut the last cache entries that no row uses (rejected everywhere) off the cache; the mask without them."""
    used = mask.amax(dim=0).flip(0).nonzero()
    unused = mask.shape[1] if len(used) == 0 else int(used[0])
    if unused == 0:
        return mask
    drop_last(cache, unused)
    return mask[:, :-unused]


def generate_speculative(lm: Any, rows: list[list[int]], params: GenerationParams, stops: Sequence[int],
                         generator: Optional[torch.Generator] = None) -> list[list[int]]:
    """One batch of LogitsLM.generate, decoded speculatively; adds the batch's figures to lm.speculative_stats."""
    def verify(ids, mask, positions, past):  # the LM primitives take the cache before the positions
        return lm.verify_logits(ids, mask, past, positions)

    out, stats = speculative_decode(lm._step, verify, lm.drafter_for(params.speculative), rows, params,
                                    pad_id=lm.pad_id, eos_id=lm.tokenizer.eos_token_id, stop_ids=stops,
                                    device=lm.device, generator=generator)
    lm.speculative_stats = stats if lm.speculative_stats is None else lm.speculative_stats.merged(stats)
    return out


@torch.inference_mode()
def speculative_decode(step: Step, verify: Verify, drafter: Any, prompts: Sequence[Sequence[int]],
                       params: GenerationParams, *, pad_id: int, eos_id: Optional[int], stop_ids: Sequence[int] = (),
                       device: torch.device | str = "cpu",
                       generator: Optional[torch.Generator] = None) -> tuple[list[list[int]], SpeculativeStats]:
    """What `memorylab.decoding.loop.decode(step, ...)` returns, drafted by `drafter` (its `step` gives logits
    over its vocabulary, `token_ids` maps them to ours) and verified by `verify`; plus the figures."""
    spec, stats = params.speculative, SpeculativeStats()
    if not prompts:
        return [], stats
    schedule = GammaSchedule(spec.gamma, spec.adaptive, spec.max_gamma)
    ids, mask, positions = left_padded(prompts, pad_id, device)
    end_ids = enders(eos_id, stop_ids, device)
    generator = generator if generator is not None else sampling_generator(params, device)
    batch, limit = len(prompts), params.max_new_tokens

    logits, t_past = step(ids, mask, positions, None)
    _, d_past = drafter.step(ids, mask, positions, None)
    t_mask, d_mask = mask, mask
    # The token after the prompt, as plain decoding picks it; in no cache yet.
    x = choose_token(logits, params, generator)
    pos = positions[:, -1] + 1  # x's position
    out: list[list[int]] = [[] for _ in prompts]
    done = _emit(out, [[t] for t in x.tolist()], [True] * batch, end_ids, limit)
    # Tokens the drafter has not seen yet, with their mask and positions: x now; later also a last kept draft.
    pend, pend_mask, pend_pos = x[:, None], _live(done, device), pos[:, None]

    while not all(done):
        active = torch.tensor([not d for d in done], device=device)
        left = torch.tensor([limit - len(o) if not d else 1 for o, d in zip(out, done)], device=device)
        gamma = min(schedule.gamma, int(left.max()) - 1)  # drafts past every row's budget would be wasted
        cap = torch.where(active, left - 1, torch.zeros_like(left))  # drafts a row can still emit
        began = time.perf_counter()
        drafts, q = torch.empty(batch, gamma, dtype=torch.long, device=device), []
        for i in range(gamma):
            if i == 0 and pend.shape[1] > 1 and not bool(pend_mask[:, 0].any()):
                pend, pend_mask, pend_pos = pend[:, 1:], pend_mask[:, 1:], pend_pos[:, 1:]  # no row needs it
            d_mask = torch.cat([d_mask, pend_mask], dim=-1)
            d_logits, d_past = drafter.step(pend, d_mask, pend_pos, d_past)
            drafts[:, i], q_i = _propose(d_logits, drafter.token_ids, params, generator)
            q.append(q_i)
            # Positions past a row's budget repeat its last one: never read, and never past the model's context.
            pend, pend_mask = drafts[:, i:i + 1], active.long()[:, None]
            pend_pos = (pos + cap.clamp(max=i + 1))[:, None]
        drafted_at = time.perf_counter()

        offsets = torch.minimum(torch.arange(gamma + 1, device=device)[None, :], cap[:, None])
        t_mask = torch.cat([t_mask, active.long()[:, None].expand(batch, gamma + 1)], dim=-1)
        v_logits, t_past = verify(torch.cat([x[:, None], drafts], dim=1), t_mask, pos[:, None] + offsets, t_past)
        kept, x = _accept(v_logits, drafts, q, drafter.token_ids, cap, params, generator)
        verified_at = time.perf_counter()

        kept_list, x_list, draft_list = kept.tolist(), x.tolist(), drafts.tolist()
        was_active = [not d for d in done]
        done = _emit(out, [draft_list[b][:kept_list[b]] + [x_list[b]] for b in range(batch)], was_active,
                     end_ids, limit)
        usable, accepted = int(cap.clamp(max=gamma).sum()), int(kept.sum())
        stats.rounds += 1
        stats.row_rounds += sum(was_active)
        stats.gamma_sum += gamma
        stats.drafted += usable
        stats.accepted += accepted
        stats.draft_seconds += drafted_at - began
        stats.verify_seconds += verified_at - drafted_at
        schedule.update(usable, accepted, (drafted_at - began) / gamma if gamma else None, verified_at - drafted_at)

        # Roll back: the target's new entries are x and the drafts; only x and the kept drafts stay visible.
        keep_cols = (torch.arange(gamma + 1, device=device)[None, :] <= kept[:, None]) & active[:, None]
        t_mask = torch.cat([t_mask[:, : -(gamma + 1)], keep_cols.long()], dim=-1)
        if gamma >= 2:  # the drafter was fed drafts 1..gamma-1 (its last draft it never saw)
            d_mask = torch.cat([d_mask[:, : -(gamma - 1)], keep_cols[:, 1:gamma].long()], dim=-1)
        pos = pos + torch.where(active, kept + 1, torch.zeros_like(kept))
        still = _live(done, device)
        if gamma == 0:  # no drafting this round: the drafter has yet to see x's predecessor too
            pend, pend_mask = torch.cat([pend, x[:, None]], 1), torch.cat([pend_mask * still, still], 1)
            pend_pos = torch.cat([pend_pos, pos[:, None]], 1)
        else:  # its last draft, where every draft was kept, and x
            last_kept = ((kept == gamma) & active).long()[:, None] * still
            pend, pend_mask = torch.cat([drafts[:, -1:], x[:, None]], 1), torch.cat([last_kept, still], 1)
            pend_pos = torch.cat([(pos - 1)[:, None], pos[:, None]], 1)
        t_mask, d_mask = _cut_unused(t_mask, t_past), _cut_unused(d_mask, d_past)
    stats.emitted = sum(len(o) for o in out)
    return out, stats


def _live(done: list[bool], device) -> torch.Tensor:
    """(B, 1) mask column: 1 for the rows still generating."""
    return torch.tensor([[int(not d)] for d in done], dtype=torch.long, device=device)


def _emit(out: list[list[int]], new: list[list[int]], active: list[bool], end_ids: torch.Tensor,
          limit: int) -> list[bool]:
    """Append each active row's new tokens up to its first ender (kept) or its budget; which rows are done."""
    ends = set(end_ids.tolist())
    done = []
    for row, tokens in enumerate(new):
        finished = not active[row]
        for token in tokens if active[row] else ():
            out[row].append(token)
            if token in ends or len(out[row]) >= limit:
                finished = True
                break
        done.append(finished)
    return done


def _propose(logits: torch.Tensor, token_ids: Optional[torch.Tensor], params: GenerationParams,
             generator) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """A draft token (target ids) per row, and the drafter's distribution q over its columns (sampling)."""
    if params.greedy:
        column, q = logits.argmax(dim=-1), None
    else:
        q = sampling_probs(logits, params)
        q = q / q.sum(dim=-1, keepdim=True)
        column = torch.multinomial(q, 1, generator=generator).squeeze(-1)
    return (column if token_ids is None else token_ids[column]), q


def _accept(logits: torch.Tensor, drafts: torch.Tensor, q: list, token_ids: Optional[torch.Tensor],
            cap: torch.Tensor, params: GenerationParams, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """How many drafts each row keeps (at most `cap`) and the token that follows them."""
    batch, gamma = drafts.shape
    rows = torch.arange(batch, device=drafts.device)
    if params.greedy:
        best = logits.argmax(dim=-1)  # (B, gamma + 1)
        kept = (drafts == best[:, :gamma]).long().cumprod(dim=1).sum(dim=1)
        kept = torch.minimum(kept, cap)
        return kept, best[rows, kept]
    p = sampling_probs(logits, params)
    p = p / p.sum(dim=-1, keepdim=True)
    q_full = torch.zeros_like(p)  # q over our vocabulary; position gamma (the bonus) has no draft: q = 0
    if gamma:
        q_cols = torch.stack(q, dim=1)
        if token_ids is None:
            q_full[:, :gamma, : q_cols.shape[-1]] = q_cols
        else:
            q_full[:, :gamma].scatter_(-1, token_ids.expand(batch, gamma, -1), q_cols)
    p_draft = p[:, :gamma].gather(-1, drafts[..., None]).squeeze(-1)
    q_draft = q_full[:, :gamma].gather(-1, drafts[..., None]).squeeze(-1)
    uniform = torch.rand((batch, gamma), generator=generator, device=drafts.device)
    natural = (uniform * q_draft < p_draft).long().cumprod(dim=1).sum(dim=1)  # accept w.p. min(1, p/q)
    kept = torch.minimum(natural, cap)
    # After the kept drafts: a draw from norm(max(0, p - q)) where a draft was rejected, from p after all
    # gamma (q = 0 there). A row cut by its budget (cap) before a rejection emits its next, accepted, draft.
    residual = (p[rows, kept] - q_full[rows, kept]).clamp(min=0)
    empty = residual.sum(dim=-1, keepdim=True) <= 0  # p == q up to rounding: a rejection was a rounding artefact
    residual = torch.where(empty, p[rows, kept], residual)
    token = torch.multinomial(residual, 1, generator=generator).squeeze(-1)
    if gamma:
        capped = natural > kept
        token = torch.where(capped, drafts[rows, kept.clamp(max=gamma - 1)], token)
    return kept, token
