"""ULD greedy decoding speed: the target alone vs ULD (target - alpha * assistant), in-process and on Ray.

Run: .venv/bin/python bench/uld_decode.py

Compares tokens/s of greedy decoding on the same prompts (biography prefixes of the synthetic world) for
  (a) the target alone, HFLM in-process;
  (b) ULDLM in-process (what one ModelActor hosting ULD runs): the assistant steps on LeanLlama;
  (b') the same with the assistant through transformers (lean_assistant=False), for reference;
  (c) one ModelActor hosting ULD (assistant_source=...), called through RemoteLM;
  (d) two ModelActors (target, assistant) in one STRICT_PACK group, stepped in lockstep (LockstepULD);
  (e) for reference, the target alone and ULD with the target's steps also on LeanLlama (`LeanStepHFLM`): what
      the ratio becomes when the target's decoding is as lean as the assistant's.
In-process timings use torch.set_num_threads(1) and every actor has num_cpus=1 (one torch thread), so each
forward gets one core everywhere; (d) uses two cores at once (one per actor). Best of --reps repetitions;
the in-process ones take turns (a, b, b', a, b, b', ...), so a change in the machine's load between them
affects all alike.
ratio = tokens/s (b) / tokens/s (a): the price of ULD over plain decoding; goal >= 0.8. ratio_cpu_time is
the same from this thread's CPU time, steadier when other processes share the cores. ms_*: milliseconds a
step spends in each part (step_breakdown), from --reps more runs of (a) and (b). flops_per_token_*: the
arithmetic of one decoding step per row (matrix products and attention at the mean context length);
ratio_if_compute_bound = target / (target + assistant), the ratio of a decoder that ran both models at the
same speed per FLOP. --quick: in-process only (no Ray), fewer prompts and repetitions. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import ray
import torch

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.cluster.placement import remove_group, strict_pack_group
from memorylab.data import build_world
from memorylab.data.corpus import corpus, tokenizer_texts
from memorylab.decoding.lean_llama import LeanLlama
from memorylab.decoding.loop import decode
from memorylab.decoding.uld import ULDLM
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import GenerationParams
from memorylab.models.tiny import build_tiny_model
from memorylab.models.train_jobs import prepare_tokenizer
from memorylab.models.trainer import train_causal_lm
from memorylab.schema.common import ActorResources, ModelSpec, TinyModelConfig, TrainConfig, WorldConfig
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant

GOAL = 0.8
ALPHA, R = 1.0, 0.1


def build_models(folder: Path, train_steps: int):
    """World, tokenizer, a (briefly trained) quickstart-size target and a 1-layer merged assistant."""
    world = build_world(WorldConfig())
    spec = ModelSpec(tiny=TinyModelConfig(hidden_size=128, num_layers=4, intermediate_size=384, vocab_size=2048))
    tok_dir = prepare_tokenizer(spec, tokenizer_texts(world), folder / "tokenizer")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    model = build_tiny_model(spec.tiny, tokenizer, seed=0)
    target_dir = folder / "target"
    if train_steps:
        cfg = TrainConfig(steps=train_steps, batch_size=16, seq_len=128, warmup_steps=min(10, train_steps // 3),
                          checkpoint_every=10**6)
        target_dir = train_causal_lm(model, tokenizer, corpus(world, ["forget", "retain"]), cfg, folder / "train",
                                     seed=0, desc="train target", show_progress=False).final_dir
    else:
        model.save_pretrained(target_dir)
        tokenizer.save_pretrained(target_dir)
    assistant_dir = folder / "assistant"
    merge_assistant(build_assistant(model.eval(), num_layers=1)).save_pretrained(assistant_dir)
    tokenizer.save_pretrained(assistant_dir)
    return world, spec, str(target_dir), str(assistant_dir)


class LeanStepHFLM(HFLM):
    """The reference (e): an HFLM whose decoding steps run on LeanLlama over its (fixed) weights."""

    def __init__(self, lm: HFLM) -> None:
        super().__init__(lm.model, lm.tokenizer, batch_size=lm.batch_size, device=lm.device)
        self._lean = LeanLlama(lm.model)

    def next_token_logits(self, input_ids, attention_mask=None, past=None, position_ids=None):
        return self._lean.step(input_ids, attention_mask, position_ids, past)


def flops_per_token(config, context: float) -> float:
    """Multiply-adds x 2 of one decoding step for one row of a Llama model: every layer's projections and MLP,
    attention over `context` cached tokens, and the LM head. (Norms, rope and softmax are a few per cent.)"""
    hidden, inter, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    projections = hidden * (heads + 2 * kv_heads) * head_dim + heads * head_dim * hidden + 3 * hidden * inter
    attention = 2 * heads * head_dim * context
    return 2.0 * (config.num_hidden_layers * (projections + attention) + hidden * vocab)


def biography_prompts(lm: HFLM, world, count: int) -> list[str]:
    bios = [lm.encode([b])[0] for s in ("forget", "retain", "holdout") for b in world.biographies(s)]
    prefixes = [ids[:n] for n in (12, 8, 16) for ids in bios]
    return lm.decode(prefixes[:count])


def new_tokens(lm, prompts: list[str], params: GenerationParams) -> int:
    """Tokens the model really generates for the prompts (rows may stop at EOS before max_new_tokens)."""
    seqs = lm._with_start(prompts)
    total = 0
    for batch in lm._batches(seqs):
        new = decode(lm._step, [seqs[i] for i in batch], params, pad_id=lm.pad_id,
                     eos_id=lm.tokenizer.eos_token_id, device=lm.device)
        total += sum(len(n) for n in new)
    return total


def mean_context(lm: HFLM, prompts: list[str], new: int) -> float:
    """Cached tokens a decoding step attends to, on average over the steps: the start token and prompt, plus
    half the new tokens."""
    return sum(len(ids) for ids in lm._with_start(prompts)) / len(prompts) + new / 2


def best_time(fn, reps: int) -> tuple[float, list[str]]:
    wall, _, out = best_times({"": fn}, reps)[""]
    return wall, out


def best_times(fns: dict, reps: int) -> dict[str, tuple[float, float, list[str]]]:
    """Best wall time, best CPU time of this thread and last output of each function, the functions taking
    turns `reps` times. The CPU time leaves out the time other processes held the core, so on a busy
    machine it says more about in-process work than the wall time does."""
    wall, cpu, out = {name: float("inf") for name in fns}, {name: float("inf") for name in fns}, {}
    for _ in range(reps):
        for name, fn in fns.items():
            began, began_cpu = time.perf_counter(), time.thread_time()
            out[name] = fn()
            wall[name] = min(wall[name], time.perf_counter() - began)
            cpu[name] = min(cpu[name], time.thread_time() - began_cpu)
    return {name: (wall[name], cpu[name], out[name]) for name in fns}


def step_breakdown(target: HFLM, uld: ULDLM, prompts: list[str], params: GenerationParams,
                   reps: int) -> dict[str, float]:
    """Milliseconds a decoding step (prefill included) spends in each part: the target's forward alone and
    beside the assistant, the assistant's layers (LeanLlama), its head and the combination. Timed by wrapping
    the parts in `reps` more generations of each model (apart from the timings above), the best of each part."""
    best: dict[str, float] = {}
    for _ in range(reps):
        for name, ms in _timed_parts(target, uld, prompts, params).items():
            best[name] = min(best.get(name, float("inf")), ms)
    return best


def _timed_parts(target: HFLM, uld: ULDLM, prompts: list[str], params: GenerationParams) -> dict[str, float]:
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}

    def timed(name, fn):
        def run(*args, **kwargs):
            began = time.perf_counter()
            out = fn(*args, **kwargs)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - began
            calls[name] = calls.get(name, 0) + 1
            return out
        return run

    target.next_token_logits = timed("target", target.next_token_logits)
    try:
        target.generate(prompts, params)
        alone, alone_steps = seconds.pop("target"), calls.pop("target")
        uld._lean.step_hidden = timed("assistant_layers", uld._lean.step_hidden)
        uld._combine_sparse = timed("assistant_head_and_combination", uld._combine_sparse)
        uld.generate(prompts, params)
    finally:
        for obj, name in ((target, "next_token_logits"), (uld._lean, "step_hidden"), (uld, "_combine_sparse")):
            obj.__dict__.pop(name, None)  # back to the class's method
    beside, steps = seconds.pop("target"), calls["target"]
    return {"ms_target_step": 1e3 * alone / alone_steps, "ms_target_step_beside_assistant": 1e3 * beside / steps,
            **{f"ms_{name}": 1e3 * total / steps for name, total in seconds.items()}}


def ray_placements(target_dir: str, assistant_dir: str, prompts: list[str], params: GenerationParams,
                   args) -> dict[str, tuple[float, list[str]]]:
    """Best time and texts of each model behind actors: the target alone in one actor of 1 CPU and of 2, ULD
    hosted in one actor (1 CPU), and ULD over two actors of 1 CPU each in one STRICT_PACK group, stepping in
    lockstep (the target's actor drives, the assistant's steps beside it over the direct link).

    All the actors are up at once and take turns (one generates at a time), as the in-process runs do, so a
    change in the machine's speed meanwhile touches every figure alike: the Ray reserves their 6 CPUs on
    this machine's cores, which only one of them uses at a time."""
    spec = ModelSpec(device="cpu")
    uld = {"uld_alpha": ALPHA, "uld_r": R}
    with ray_session(num_cpus=6):
        actors = {name: create_model_actor("target", target_dir, spec, ActorResources(num_cpus=cpus),
                                           batch_size=args.batch_size, **extra)
                  for name, cpus, extra in (("target_actor", 1, {}), ("target_actor_2cpus", 2, {}),
                                            ("one_actor", 1, {"assistant_source": assistant_dir, **uld}))}
        pg = strict_pack_group([{"CPU": 1}, {"CPU": 1}], timeout_s=60)
        one_cpu = ActorResources(num_cpus=1)
        assistant = create_model_actor("assistant", assistant_dir, spec, one_cpu, batch_size=args.batch_size,
                                       placement_group=pg, bundle_index=1)
        try:
            actors["two_actors"] = create_model_actor("target", target_dir, spec, one_cpu, placement_group=pg,
                                                      batch_size=args.batch_size, bundle_index=0,
                                                      assistant_actor=assistant, **uld)
            lms = {name: RemoteLM(actor) for name, actor in actors.items()}
            for lm in lms.values():  # loaded, and the link open, before the clock starts
                lm.generate(prompts[:1], GenerationParams(max_new_tokens=1))
            timed = best_times({name: (lambda lm=lm: lm.generate(prompts, params)) for name, lm in lms.items()},
                               args.reps)
        finally:
            for actor in [*actors.values(), assistant]:
                ray.kill(actor)
            remove_group(pg)
    return {name: (wall, out) for name, (wall, _, out) in timed.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    # 0 by default: a briefly trained target ends most rows at EOS within a few tokens, and then the figures
    # measure prefill, not decoding; untrained models run every row for all --new-tokens.
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="in-process figures only (no Ray), 32 prompts, 3 reps")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.reps = min(args.prompts, 32), min(args.reps, 3)
    torch.set_num_threads(1)
    params = GenerationParams(max_new_tokens=args.new_tokens)

    with tempfile.TemporaryDirectory(prefix="bench-uld-") as tmp:
        world, spec, target_dir, assistant_dir = build_models(Path(tmp), args.train_steps)
        target = HFLM.load(target_dir, device="cpu", batch_size=args.batch_size)
        assistant = HFLM.load(assistant_dir, device="cpu", batch_size=args.batch_size)
        uld = ULDLM(target, assistant, alpha=ALPHA, r=R)
        uld_hf = ULDLM(target, assistant, alpha=ALPHA, r=R, lean_assistant=False)
        lean_target = LeanStepHFLM(target)
        uld_lean_target = ULDLM(lean_target, assistant, alpha=ALPHA, r=R)
        prompts = biography_prompts(target, world, args.prompts)
        n_target, n_uld = new_tokens(target, prompts, params), new_tokens(uld, prompts, params)

        timed = best_times({"target": lambda: target.generate(prompts, params),
                            "uld": lambda: uld.generate(prompts, params),
                            "uld_hf": lambda: uld_hf.generate(prompts, params),
                            "target_lean": lambda: lean_target.generate(prompts, params),
                            "uld_lean_target": lambda: uld_lean_target.generate(prompts, params)}, args.reps)
        (t_target, cpu_target, target_out), (t_uld, cpu_uld, uld_out) = timed["target"], timed["uld"]
        t_uld_hf, _, uld_hf_out = timed["uld_hf"]
        (t_target_lean, _, target_lean_out), (t_uld_lean, _, uld_lean_out) = (timed["target_lean"],
                                                                              timed["uld_lean_target"])
        context = mean_context(target, prompts, args.new_tokens)
        flops = {"target": flops_per_token(target.model.config, context),
                 "assistant": flops_per_token(assistant.model.config, context)}
        breakdown = step_breakdown(target, uld, prompts, params, args.reps)

        placements = {} if args.quick else ray_placements(target_dir, assistant_dir, prompts, params, args)

    uld_outs = [uld_out, uld_hf_out, uld_lean_out] + [out for name, (_, out) in placements.items()
                                                       if not name.startswith("target")]
    target_outs = [target_lean_out] + [out for name, (_, out) in placements.items() if name.startswith("target")]
    same = all(out == uld_out for out in uld_outs) and all(out == target_out for out in target_outs)
    if not same:
        print("WARNING: the ULD placements or the models' step paths generated different texts", file=sys.stderr)
    figures = {
        "tokens_per_s_target": n_target / t_target,
        "tokens_per_s_uld": n_uld / t_uld,
        "tokens_per_s_uld_hf_assistant": n_uld / t_uld_hf,
        **{f"tokens_per_s_{'' if name.startswith('target') else 'uld_'}{name}":
           (n_target if name.startswith("target") else n_uld) / t for name, (t, _) in placements.items()},
        "tokens_per_s_target_lean": n_target / t_target_lean,
        "tokens_per_s_uld_lean_target": n_uld / t_uld_lean,
    }
    ratios = {"ratio_in_process": figures["tokens_per_s_uld"] / figures["tokens_per_s_target"],
              "ratio_cpu_time": cpu_target / cpu_uld, "ratio_lean_target": t_target_lean / t_uld_lean}
    if placements:
        # The placement the issue names: target and assistant actors in one STRICT_PACK group in lockstep,
        # against the target alone in its actor. It reserves two CPUs to the target's one; the two other
        # ratios say what that costs: against a target given two CPUs as well, and per reserved CPU.
        two = figures["tokens_per_s_uld_two_actors"]
        ratios.update(ratio=two / figures["tokens_per_s_target_actor"],
                      ratio_vs_target_2cpus=two / figures["tokens_per_s_target_actor_2cpus"],
                      ratio_per_reserved_cpu=two / 2 / figures["tokens_per_s_target_actor"],
                      ratio_one_actor=figures["tokens_per_s_uld_one_actor"] / figures["tokens_per_s_target_actor"])
    else:  # --quick: no actors, so the in-process figure stands for it
        ratios["ratio"] = ratios["ratio_in_process"]
    print(f"prompts {len(prompts)}, new tokens: target {n_target}, ULD {n_uld}; best of {args.reps}")
    for k, v in figures.items():
        print(f"  {k:36s} {v:9.1f}")
    print(f"  same texts in every placement and step path: {same}")
    for k, v in ratios.items():
        print(f"  {k:36s} {v:9.4f}")
    bound = flops["target"] / (flops["target"] + flops["assistant"])
    print(f"  kFLOP a token: target {flops['target'] / 1e3:.0f}, assistant {flops['assistant'] / 1e3:.0f}; "
          f"in-process ratio if compute-bound {bound:.4f}")
    print(f"  ms a step in process (best of {args.reps} timed runs):")
    for k, v in breakdown.items():
        print(f"    {k[3:]:36s} {v:7.3f}")
    result = {"bench": "uld_decode", "ratio": round(ratios.pop("ratio"), 4),
              "ratio_of": "two_actors" if placements else "in_process",
              **{k: round(v, 4) for k, v in ratios.items()},
              "ratio_if_compute_bound": round(bound, 4),
              **{f"flops_per_token_{k}": round(v) for k, v in flops.items()},
              **{k: round(v, 1) for k, v in figures.items()},
              **{k: round(v, 3) for k, v in breakdown.items()},
              "same_texts": same, "goal": GOAL}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
