"""Quantization attack: every linear layer's weights rounded to a few bits, group-wise, round-to-nearest.

"Does your LLM truly unlearn? An embarrassingly simple approach to recover unlearned knowledge" (ICLR 2025)
finds that GA/NPO-style unlearning moves the weights so little that 4-bit rounding puts most of them back where
the target had them: forgotten knowledge returns (21% retained in full precision, 83% after 4-bit). This is
the paper's RTN arm: asymmetric min-max quantization of groups of `group_size` input weights per output row
(a zero point and a scale per group, as GPTQ/AWQ's round-to-nearest baseline), dequantized at once, so the
model runs in float as before with only the rounding's effect. The embeddings and the output head stay in
full precision, as those libraries leave them. ULD: target and assistant are both quantized.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from memorylab.unlearn.attacks.attack import AttackBench, AttackOutcome, AttackSettings, AttackSubject

SKIPPED = ("lm_head",)  # modules left in full precision, as quantization libraries leave the output head


def fake_quantize(weight: Any, bits: int, group_size: int) -> Any:
    """`weight` ([out, in]) rounded to `bits` bits per group of `group_size` consecutive input weights of each
    row (a last, shorter group where `in` is not a multiple), and mapped back to floats: each group's minimum
    and maximum set the scale, the zero point is the level nearest to where 0 falls (kept among the levels),
    and every weight goes to the nearest of the 2**bits levels."""
    import torch

    levels = 2 ** bits - 1
    chunks = []
    for chunk in weight.detach().split(group_size, dim=1):
        low = chunk.amin(dim=1, keepdim=True)
        high = chunk.amax(dim=1, keepdim=True)
        scale = ((high - low) / levels).clamp(min=1e-8)
        zero = torch.round(-low / scale).clamp(0, levels)
        q = torch.clamp(torch.round(chunk / scale) + zero, 0, levels)
        chunks.append((q - zero) * scale)
    return torch.cat(chunks, dim=1).to(weight.dtype)


def quantize_model(model: Any, bits: int, group_size: int) -> int:
    """Every linear layer of `model` but the output head fake-quantized in place; returns how many."""
    import torch

    count = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and not name.endswith(SKIPPED):
                module.weight.copy_(fake_quantize(module.weight, bits, group_size))
                count += 1
    return count


class Quantize(AttackSettings):
    attack: Literal["quantize"] = "quantize"
    changes = "weights"
    bits: list[Literal[2, 3, 4, 8]] = Field([4, 8], min_length=1, description="one attacked model per bit width")
    group_size: int = Field(128, ge=1, description="input weights sharing one scale and zero point")

    def keys(self) -> list[str]:
        return [f"quantize_{b}bit" for b in self.bits]

    def run(self, subject: AttackSubject, bench: AttackBench) -> dict[str, AttackOutcome]:
        out = {}
        for bits, key in zip(self.bits, self.keys()):
            attacked = subject.copy()
            for network in attacked.networks():
                quantize_model(network, bits, self.group_size)
            out[key] = AttackOutcome(after=bench.measure(attacked.lm()))
        return out
