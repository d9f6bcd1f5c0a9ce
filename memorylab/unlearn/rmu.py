"""Representation Misdirection for Unlearning (RMU; Li et al. 2024, "The WMDP Benchmark").

Instead of a loss on the forget tokens' probabilities, RMU scrambles the model's internal state on forget text:
at one layer ℓ, the forget tokens' activations are pushed towards a fixed random direction scaled by c, and the
retain tokens' activations are held to the frozen model's:
    L = mean ‖h_ℓ(x_forget) − c·u‖²  +  α · mean ‖h_ℓ(x_retain) − h_ℓ^frozen(x_retain)‖²
where u is a random unit vector drawn once (uniform entries, normalised, as the authors' code) and the means run
over every real (unpadded) token and hidden unit. Only the MLPs of a few layers up to ℓ are updated (the paper:
layers ℓ−2..ℓ), so later layers receive a state they were never trained to read, and the text they produce from
it degrades exactly where the forget set's activations were moved.

The paper's c (6.5 on Zephyr-7B's layer 7) is an absolute length, which depends on the model's activation scale;
`adaptive: true` (the default, as "adaptive RMU", Dang et al. 2025) reads c as a multiple of the frozen model's
mean activation norm at ℓ on the first forget batch, so one value works for tiny and real models alike.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from memorylab.unlearn.method import LossMethod, UnlearnBatch


class RMU(LossMethod):
    method: Literal["rmu"] = "rmu"
    layer: Optional[int] = Field(None, ge=0, description="the block whose output is steered (0 = the first); "
                                                         "default: the middle block")
    update_layers: Optional[list[int]] = Field(
        None, min_length=1, description="the blocks whose MLP weights are updated; default: the steered block "
                                        "and the two before it, as the paper")
    steering_coeff: float = Field(4.0, gt=0, description="c: the length of the forget activations' target "
                                                         "(adaptive: in units of their frozen mean norm)")
    adaptive: bool = Field(True, description="c relative to the frozen model's mean activation norm at the "
                                             "layer; false: an absolute length, as the paper's 6.5")
    retain_weight: float = Field(100.0, ge=0, description="α: weight of the retain activations' squared "
                                                          "distance to the frozen model's")
    direction_seed: int = Field(0, ge=0, description="seed of the random direction u")

    needs_reference: ClassVar[bool] = True  # the frozen model gives the retain activations (and the norm)

    @model_validator(mode="after")
    def _layers_below_the_steered_one(self) -> "RMU":
        if self.layer is not None and self.update_layers is not None and max(self.update_layers) > self.layer:
            raise ValueError(f"rmu update_layers {self.update_layers} must not exceed layer {self.layer}: a block "
                             "after the steered one does not change its activations")
        return self

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight > 0

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        layers = scenario.model.tiny.num_layers if scenario.model.is_tiny else None
        wanted = [self.layer] if self.layer is not None else []
        if layers is not None and any(x >= layers for x in wanted + list(self.update_layers or [])):
            return (f"method {self.name}: rmu layer {self.layer} / update_layers {self.update_layers} name a block "
                    f"the target does not have (it has {layers}: 0 to {layers - 1})")
        return None

    def steered_layer(self, model: Any) -> int:
        count = len(transformer_blocks(model))
        layer = count // 2 if self.layer is None else self.layer
        if layer >= count:
            raise ValueError(f"rmu layer {layer}: the model has {count} blocks (0 to {count - 1})")
        return layer

    def trainable(self, model: Any) -> list[str]:
        """The parameters RMU updates: the MLP weights of `update_layers` (default: the steered block and the two
        before it)."""
        layer = self.steered_layer(model)
        chosen = self.update_layers if self.update_layers is not None else list(range(max(0, layer - 2), layer + 1))
        blocks = transformer_blocks(model)
        prefix = blocks_prefix(model)
        names = []
        for index in chosen:
            if index >= len(blocks):
                raise ValueError(f"rmu update_layers {chosen}: the model has {len(blocks)} blocks")
            mlp = [f"{prefix}.{index}.{name}" for name, _ in blocks[index].named_parameters() if "mlp" in name]
            if not mlp:
                raise ValueError(f"rmu: block {index} of {type(model).__name__} has no parameters named 'mlp'")
            names += mlp
        return names

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        import torch

        if batch.reference is None:
            raise ValueError("rmu needs the frozen model before unlearning (the loop's reference)")
        layer = self.steered_layer(model)
        forget = activations(model, batch.forget, layer)
        mask = batch.forget["attention_mask"].bool()
        if "rmu_target" not in batch.cache:
            batch.cache["rmu_target"] = self.target_vector(batch, layer, forget.shape[-1])
        target = batch.cache["rmu_target"].to(forget.device, forget.dtype)
        forget_loss = ((forget - target) ** 2)[mask].mean()
        stats = {"forget_mse": float(forget_loss.detach())}
        loss = forget_loss
        if self.uses_retain:
            if batch.retain is None:
                raise ValueError(f"{self.method} with retain_weight > 0 needs a retain batch")
            retained = activations(model, batch.retain, layer)
            with torch.no_grad():
                frozen = activations(batch.reference, batch.retain, layer)
            retain_mask = batch.retain["attention_mask"].bool()
            retain_loss = ((retained - frozen) ** 2)[retain_mask].mean()
            stats["retain_mse"] = float(retain_loss.detach())
            loss = loss + self.retain_weight * retain_loss
        return loss, stats

    def target_vector(self, batch: UnlearnBatch, layer: int, hidden: int) -> Any:
        """c·u: u a seeded random unit vector; c absolute, or times the frozen forget activations' mean norm."""
        import torch

        generator = torch.Generator().manual_seed(self.direction_seed)
        u = torch.rand(hidden, generator=generator)
        u = u / u.norm()
        scale = self.steering_coeff
        if self.adaptive:
            with torch.no_grad():
                frozen = activations(batch.reference, batch.forget, layer)
                scale *= float(frozen[batch.forget["attention_mask"].bool()].norm(dim=-1).mean())
        return scale * u


def transformer_blocks(model: Any) -> Any:
    """The model's list of transformer blocks: the ModuleList as long as its config's layer count."""
    count = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    for _, module in model.named_modules():
        if type(module).__name__ == "ModuleList" and len(module) == count:
            return module
    raise ValueError(f"{type(model).__name__}: found no list of {count} transformer blocks")


def blocks_prefix(model: Any) -> str:
    blocks = transformer_blocks(model)
    return next(name for name, module in model.named_modules() if module is blocks)


def activations(model: Any, batch: dict[str, Any], layer: int) -> Any:
    """The output of block `layer` for every token of the batch, [B, T, hidden], read by a hook on the block
    (hidden_states would give the last block's output after the final norm)."""
    captured = []

    def keep(module: Any, args: Any, output: Any) -> None:
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = transformer_blocks(model)[layer].register_forward_hook(keep)
    try:
        model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        handle.remove()
    return captured[0]
