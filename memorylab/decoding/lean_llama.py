"""A lean next-token forward over a transformers LlamaForCausalLM's weights, for step-by-step decoding.

Why it exists: ULD runs a 1-layer assistant beside its target for every generated token, and through
transformers such a small model's step on CPU is mostly overhead, not arithmetic (mask construction, cache
objects, hooks, output dataclasses, and a dozen small ops per layer). `LeanLlama` computes the same function:

    h = embed(ids)
    per layer:  h += o(attend(rope(q(n)), rope(k(n)), v(n)))   with n = rms_norm(h)
                h += down(silu(gate(n)) * up(n))              with n = rms_norm(h)
    logits = head(rms_norm(h[:, -1]))

with few ops, and laid out for a model that steps beside another: the other model's forward evicts this
one's weights and cache from the CPU caches every step, so how memory is read matters as much as the
arithmetic (see `_transposed` and `LeanCache`). Only the last position's logits are computed, the only ones a
decoding loop reads; full-sequence scoring stays on transformers. The step contract is the decoding loop's
(memorylab.decoding.loop): left-padded ids, a mask over cached + new tokens, positions counting real tokens.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

# Rope variants whose frequencies change with the sequence length: a fixed table cannot reproduce them.
_DYNAMIC_ROPE = ("dynamic", "longrope")


def unsupported_reason(model) -> Optional[str]:
    """Why `LeanLlama` cannot run this model, or None when it can (a plain, merged LlamaForCausalLM)."""
    from transformers import LlamaForCausalLM

    if not isinstance(model, LlamaForCausalLM):
        return f"needs a transformers LlamaForCausalLM, got {type(model).__name__} (merge LoRA adapters first)"
    if model.model.embed_tokens.weight.dtype != torch.float32:
        # Rope below is a complex64 multiply; half-precision decoding would also round differently.
        return f"needs float32 weights, got {model.model.embed_tokens.weight.dtype}"
    if model.config.hidden_act != "silu":
        return f"needs the SiLU MLP activation, got {model.config.hidden_act!r}"
    if getattr(model.model.rotary_emb, "rope_type", "default") in _DYNAMIC_ROPE:
        return f"needs a static rope table, got rope_type {model.model.rotary_emb.rope_type!r}"
    return None


def _pairs_interleaved(weight: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a q or k projection reordered within each head from transformers' halves (x_0..x_{d/2-1},
    x_{d/2}..x_{d-1}) to pairs (x_0, x_{d/2}, x_1, x_{d/2+1}, ...): each rotary pair becomes one complex
    number, so rope is one in-place complex multiply. Attention scores are sums over a head's dimensions,
    unchanged when queries and keys share the order; values keep theirs."""
    rows = weight.shape[0] // heads
    order = torch.arange(rows).view(2, rows // 2).t().reshape(-1)
    return weight.view(heads, rows, *weight.shape[1:])[:, order].reshape(weight.shape)


def _transposed(weights: list[torch.Tensor], biases: list[Optional[torch.Tensor]]):
    """Weights of linears that read the same input, side by side and transposed to (in, out): one matmul for
    all, and the layout MKL reads faster from memory than F.linear's, where the weights of a model stepping
    beside another are every step."""
    weight = torch.cat(weights).t().contiguous()
    if all(b is None for b in biases):
        return weight, None
    return weight, torch.cat([b if b is not None else weight.new_zeros(w.shape[0]) for w, b in zip(weights, biases)])


def _params(linear) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    return linear.weight.detach(), None if linear.bias is None else linear.bias.detach()


class _Layer:
    """A decoder layer's weights as `LeanLlama` uses them (copies): q, k, v as one (in, out) matrix with q and
    k rows in rotary-pair order, gate and up as another."""

    def __init__(self, layer, heads: int, kv_heads: int) -> None:
        attn, mlp = layer.self_attn, layer.mlp
        self.attn_norm = layer.input_layernorm.weight.detach()
        self.mlp_norm = layer.post_attention_layernorm.weight.detach()
        (wq, bq), (wk, bk), (wv, bv) = _params(attn.q_proj), _params(attn.k_proj), _params(attn.v_proj)
        self.qkv, self.qkv_bias = _transposed(
            [_pairs_interleaved(wq, heads), _pairs_interleaved(wk, kv_heads), wv],
            [None if bq is None else _pairs_interleaved(bq, heads),
             None if bk is None else _pairs_interleaved(bk, kv_heads), bv])
        (wo, bo), (wd, bd) = _params(attn.o_proj), _params(mlp.down_proj)
        self.o, self.o_bias = _transposed([wo], [bo])
        (wg, bg), (wu, bu) = _params(mlp.gate_proj), _params(mlp.up_proj)
        self.gate_up, self.gate_up_bias = _transposed([wg, wu], [bg, bu])
        self.down, self.down_bias = _transposed([wd], [bd])


class LeanCache:
    """Keys and values of every layer in one buffer each, (2, batch, kv_heads, capacity, head_dim): [0] keys,
    [1] values. A step writes its new tokens in place and attention reads the first `length` positions (a
    view); a full buffer is copied into one of twice the length, so a sequence is copied a handful of times
    rather than at every step.

    In place, not a concatenation per step: concatenating copies the whole cache every step, a cost that
    grows with every token and is large beside a small assistant's forward; attention over the buffer's
    first `length` positions reads the same rows a contiguous tensor would."""

    MIN_CAPACITY = 64

    def __init__(self, layers: int) -> None:
        self.kv: list[Optional[torch.Tensor]] = [None] * layers
        self.length = 0
        self.batch: Optional[int] = None

    def append(self, index: int, kv: torch.Tensor) -> torch.Tensor:
        """Add (2, B, kv_heads, T, head_dim) to layer `index` after the `length` cached tokens; returns that
        layer's keys and values up to and including them."""
        end = self.length + kv.shape[3]
        buffer = self.kv[index]
        if buffer is None or buffer.shape[3] < end:
            grown = kv.new_empty(*kv.shape[:3], max(self.MIN_CAPACITY, 2 * end), kv.shape[4])
            if buffer is not None:
                grown[:, :, :, : self.length].copy_(buffer[:, :, :, : self.length])
            self.kv[index] = buffer = grown
        buffer[:, :, :, self.length: end].copy_(kv)
        return buffer[:, :, :, :end]

    def drop_last(self, count: int) -> None:
        """Forget the last `count` tokens of every row (speculative decoding's rollback of rejected drafts):
        the next step writes over them."""
        if count > 0:
            self.length -= count


class LeanLlama:
    """Next-token logits of a LlamaForCausalLM: `step(ids, mask, positions, cache) -> (logits (B, V), cache)`,
    the signature of the decoding loop's step function. A None cache starts one (prefill); later calls append.

    The layers' matrices are copies taken at construction (packed, see `_Layer`): build it once the model's
    weights are final (ULD's merged assistant is frozen). Embeddings, norms and head are the model's own
    tensors: the head, the largest matrix, is not copied (a copy in `_transposed` layout would take its memory
    twice and not make the decoding loop faster)."""

    def __init__(self, model) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"LeanLlama {reason}")
        config = model.config
        self.heads = int(config.num_attention_heads)
        self.kv_heads = int(getattr(config, "num_key_value_heads", None) or self.heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // self.heads)
        if self.heads % self.kv_heads or self.head_dim % 2:
            raise ValueError(f"LeanLlama needs attention heads ({self.heads}) to be a multiple of key/value "
                             f"heads ({self.kv_heads}) and an even head size ({self.head_dim})")
        self.eps = float(config.rms_norm_eps)
        self.scale = self.head_dim ** -0.5
        self.embed = model.model.embed_tokens.weight.detach()
        self.device = self.embed.device
        self.norm = model.model.norm.weight.detach()
        self.head = model.lm_head.weight.detach()
        self.layers = [_Layer(layer, self.heads, self.kv_heads)
                       for layer in model.model.layers[: config.num_hidden_layers]]
        self._rope = _rope_table(model.model.rotary_emb, int(config.max_position_embeddings)).to(self.device)
        # Additive attention bias by mask value (0 padding, 1 real), looked up in one op. finfo.min, not -inf:
        # exp() of it is 0 all the same, but a padding query that may attend to nothing gets a uniform (unused)
        # row instead of NaN, which would reach real rows through the values it caches.
        self._bias_of = torch.tensor([torch.finfo(torch.float32).min, 0.0], device=self.device)

    @torch.inference_mode()
    def step(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
             position_ids: Optional[torch.Tensor] = None,
             cache: Optional[LeanCache] = None) -> tuple[torch.Tensor, LeanCache]:
        """Logits (B, V, float32) after the last of `input_ids` (B, T). `attention_mask` (B, cached + T)
        marks real tokens with 1 (None: all real); `position_ids` (B, T) default to cached + 0..T-1, as in
        transformers."""
        last, cache = self.step_hidden(input_ids, attention_mask, position_ids, cache)
        return F.linear(last, self.head), cache

    @torch.inference_mode()
    def step_hidden(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None,
                    position_ids: Optional[torch.Tensor] = None,
                    cache: Optional[LeanCache] = None, every_position: bool = False) -> tuple[torch.Tensor, LeanCache]:
        """`step` up to the final norm: the last position's hidden state (B, hidden), before the head; with
        `every_position`, every new position's (B, T, hidden) (speculative decoding verifies them all)."""
        batch, new = input_ids.shape
        cache = LeanCache(len(self.layers)) if cache is None else cache
        if cache.batch not in (None, batch):
            raise ValueError(f"the cache holds {cache.batch} rows, the step has {batch}")
        cache.batch, total = batch, cache.length + new
        # Positions never exceed the absolute index, so this bounds them without reading the tensor; only a cache
        # with holes (speculative decoding masks rejected drafts) can be longer than the positions it uses.
        if total > len(self._rope) and (position_ids is None or int(position_ids.max()) >= len(self._rope)):
            raise ValueError(f"{total} tokens are more than the model's {len(self._rope)} positions")
        if attention_mask is None:
            attention_mask = torch.ones(batch, total, dtype=torch.long)
        elif attention_mask.shape != (batch, total):
            raise ValueError(f"attention_mask must cover the {cache.length} cached and {new} new tokens: expected "
                             f"shape {(batch, total)}, got {tuple(attention_mask.shape)}")
        if position_ids is None:
            position_ids = torch.arange(cache.length, total).expand(batch, new)
        rope = self._rope.index_select(0, self._here(position_ids).reshape(-1)).view(batch, new, 1, -1)
        bias = self._bias(self._here(attention_mask), new)

        h = self.embed.index_select(0, self._here(input_ids).reshape(-1))  # (B * T, hidden)
        for index, layer in enumerate(self.layers):
            h = self._attention(layer, index, h, rope, bias, cache, batch, new)
            gate, up = _linear(F.rms_norm(h, h.shape[-1:], layer.mlp_norm, self.eps), layer.gate_up,
                               layer.gate_up_bias).chunk(2, dim=-1)
            h = _residual(h, F.silu(gate) * up, layer.down, layer.down_bias)
        cache.length = total
        h = h.view(batch, new, -1)
        return F.rms_norm(h if every_position else h[:, -1], h.shape[-1:], self.norm, self.eps), cache

    def _here(self, t: torch.Tensor) -> torch.Tensor:
        return t if t.device == self.device else t.to(self.device)

    def _bias(self, mask: torch.Tensor, new: int) -> torch.Tensor:
        """Additive attention bias (B, 1, T, L): 0 where a new token may attend, finfo.min elsewhere. The new
        tokens are the last T keys, so a one-token step is causal by construction."""
        batch, total = mask.shape
        bias = self._bias_of.index_select(0, mask.reshape(-1).long()).view(batch, 1, 1, total)
        if new == 1:
            return bias
        query_at = torch.arange(total - new, total, device=mask.device)[:, None]
        causal = torch.arange(total, device=mask.device)[None, :] <= query_at
        return torch.where(causal, bias, self._bias_of[0])

    def _attention(self, layer: _Layer, index: int, h: torch.Tensor, rope: torch.Tensor, bias: torch.Tensor,
                   cache: LeanCache, batch: int, new: int) -> torch.Tensor:
        """h plus the attention block's output, (B * T, hidden)."""
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        qkv = _linear(F.rms_norm(h, h.shape[-1:], layer.attn_norm, self.eps), layer.qkv, layer.qkv_bias)
        qkv = qkv.view(batch, new, heads + 2 * kv_heads, dim)
        # Rotate queries and keys in place: each rotary pair is one complex number (see _pairs_interleaved).
        torch.view_as_complex(qkv[:, :, : heads + kv_heads].unflatten(-1, (-1, 2))).mul_(rope)
        kv = cache.append(index, qkv[:, :, heads:].unflatten(2, (2, kv_heads)).permute(2, 0, 3, 1, 4))
        keys, values = kv[0], kv[1]
        # Grouped-query attention without repeating keys: the query heads that share a key/value head are
        # stacked as extra query rows of that head, (B, kv_heads, group * T, head_dim). For T = 1 it is a view.
        group, end = heads // kv_heads, keys.shape[2]
        q = qkv[:, :, :heads].transpose(1, 2).reshape(batch, kv_heads, group * new, dim)
        scores = torch.matmul(q, keys.transpose(-1, -2)).view(batch, kv_heads, group, new, end)
        weights = torch.softmax(torch.add(bias.unsqueeze(1), scores, alpha=self.scale), dim=-1)  # scale, mask
        out = torch.matmul(weights.view(batch, kv_heads, group * new, end), values)
        out = out.view(batch, heads, new, dim).transpose(1, 2).reshape(batch * new, heads * dim)
        return _residual(h, out, layer.o, layer.o_bias)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """x @ weight (+ bias), weight as `_transposed` gives it."""
    return torch.mm(x, weight) if bias is None else torch.addmm(bias, x, weight)


def _residual(h: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """h + x @ weight (+ bias): one addmm, the residual add fused into the matmul."""
    out = torch.addmm(h, x, weight)
    return out if bias is None else out.add_(bias)


def _rope_table(rotary, positions: int) -> torch.Tensor:
    """(positions, head_dim / 2) complex: e^(i * angle) * scaling per position and rotary pair, angles
    position * inv_freq in float32 as transformers computes them. Multiplying a pair (x_j, x_{j+d/2}) read as
    x_j + i x_{j+d/2} gives transformers' x * cos + rotate_half(x) * sin for both of its members."""
    angles = torch.arange(positions, dtype=torch.float32)[:, None] * rotary.inv_freq.detach().float().cpu()[None, :]
    scaling = float(getattr(rotary, "attention_scaling", 1.0))
    return torch.complex(angles.cos() * scaling, angles.sin() * scaling)
