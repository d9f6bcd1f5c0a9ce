"""Speculative decoding speed: plain greedy vs drafted-and-verified greedy, for the target and the ULD model.

Run: .venv/bin/python bench/speculative.py            (--quick: fewer prompts and repetitions)

Builds its own models on the synthetic world (kept in --workdir, reused when it already holds them):
  target    a 6-layer, 256-wide tiny Llama trained on forget + retain (--target-steps);
  drafter   a 1-layer, 128-wide tiny Llama sharing the tokenizer, trained on the same corpus plus the target's
            greedy continuations of calibration prompts (distillation; --drafter-steps);
  assistant ULD's 1-layer assistant (the target's first layer with LoRA), trained as memorylab.unlearn.uld does;
  ULD drafter the same small model for the ULD model: trained on the retain corpus plus the ULD model's own
            continuations, since a drafter serving an unlearned model should not itself be trained on the
            forget documents (the target's drafter drafting for ULD is timed too, for comparison).
The cost ratio (one target step over one drafter step, batch 1, as each runs in decoding) is measured and
printed: the goals assume a target at least 8x the drafter's cost. VocabTrim counts come from the drafted-for
model's generations on the calibration prompts (the seed paper's recipe), never from the timed prompts.

Timed, on the same prompts (biography prefixes), one prompt at a time (batch 1, the latency regime speculative
decoding is for): plain greedy target; speculative target with the full drafter and with VocabTrim heads of
--vocabs sizes; plain ULD; speculative ULD, same drafters. Every variant runs --reps times, taking turns, and
the median is reported (the machine is shared). torch uses one thread, so every figure is for one core.
speedup_target = tokens/s speculative target (full drafter) / plain target; goal >= 1.3.
speedup_uld_vs_plain_target = tokens/s speculative ULD / plain target; goal > 1. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from memorylab.data import build_world
from memorylab.data.corpus import corpus, tokenizer_texts
from memorylab.decoding.uld import ULDLM
from memorylab.decoding.vocabtrim import COUNTS_FILE, corpus_counts, save_counts
from memorylab.models.backends.hf import HFLM, load_drafter
from memorylab.models.drafter_training import distill_documents, drafter_config, train_drafter
from memorylab.models.protocol import GenerationParams, SpeculativeParams
from memorylab.models.tiny import build_tiny_model
from memorylab.models.train_jobs import prepare_tokenizer
from memorylab.models.trainer import train_causal_lm
from memorylab.schema.common import ModelSpec, TinyModelConfig, TrainConfig, WorldConfig
from memorylab.unlearn.uld import ULD
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant, train_assistant

GOALS = {"speedup_target": 1.3, "speedup_uld_vs_plain_target": 1.0, "cost_ratio": 8.0}
TARGET = TinyModelConfig(hidden_size=256, num_layers=6, num_heads=4, intermediate_size=768, vocab_size=2048)
ALPHA, R = 1.0, 0.1


def _trained(folder: Path, build, documents, steps: int, tokenizer, desc: str) -> Path:
    """A model trained on `documents` in folder/final, reused when a finished training is there."""
    final = folder / "final"
    if (final / "train_log.json").exists() and json.loads((final / "train_log.json").read_text())["steps"] == steps:
        return final
    cfg = TrainConfig(steps=steps, batch_size=16, seq_len=128, warmup_steps=min(30, steps // 5),
                      checkpoint_every=10**6)
    print(f"training {desc} ({steps} steps)", file=sys.stderr)
    return train_causal_lm(build(), tokenizer, documents, cfg, folder, seed=0, desc=desc, show_progress=False).final_dir


def build_models(folder: Path, args):
    from transformers import AutoTokenizer

    world = build_world(WorldConfig())
    tok_dir = folder / "tokenizer"
    if not tok_dir.exists():
        prepare_tokenizer(ModelSpec(tiny=TARGET), tokenizer_texts(world), tok_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    docs = corpus(world, ["forget", "retain"])
    target_dir = _trained(folder / "target", lambda: build_tiny_model(TARGET, tokenizer, seed=0), docs,
                          args.target_steps, tokenizer, "target")
    target = HFLM.load(str(target_dir), device="cpu", batch_size=32)
    calibration = calibration_prompts(target, world)

    drafter_dir = _drafter(folder / "drafter", target, docs, calibration, tokenizer, args)

    assistant_dir = folder / "assistant"
    if not (assistant_dir / "config.json").exists():
        print("training the ULD assistant", file=sys.stderr)
        assistant = build_assistant(target.model, num_layers=1)
        train_assistant(assistant, tokenizer, corpus(world, ["forget"]), corpus(world, ["retain"]),
                        ULD(steps=args.assistant_steps), show_progress=False)
        merge_assistant(assistant).save_pretrained(assistant_dir)
        tokenizer.save_pretrained(assistant_dir)
    uld = ULDLM(target, HFLM.load(str(assistant_dir), device="cpu", batch_size=32), alpha=ALPHA, r=R)
    uld_drafter_dir = _drafter(folder / "uld_drafter", uld, corpus(world, ["retain"]), calibration, tokenizer, args)
    return world, str(target_dir), str(drafter_dir), str(assistant_dir), str(uld_drafter_dir)


def _drafter(folder: Path, lm, documents: list[str], calibration: list[str], tokenizer, args) -> Path:
    """A 1-layer drafter for `lm`, trained on `documents` plus lm's greedy continuations of the calibration
    prompts (distillation), with VocabTrim counts from those continuations (the paper's recipe); reused when
    `folder` already holds one."""
    final = folder / "final"
    if not (final / COUNTS_FILE).exists():
        print(f"distilling and training {folder.name} ({args.drafter_steps} steps)", file=sys.stderr)
        distilled = distill_documents(lm, calibration, max_new_tokens=48)
        train = TrainConfig(steps=args.drafter_steps, batch_size=16, seq_len=128, warmup_steps=20,
                            checkpoint_every=10**6)
        train_drafter(tokenizer, documents + distilled, drafter_config(TARGET, num_layers=1, hidden_size=128),
                      train, folder, show_progress=False)
        save_counts(final, corpus_counts(tokenizer, [d[len(p):] for d, p in zip(distilled, calibration)]),
                    "generations")
    return final


def calibration_prompts(lm: HFLM, world) -> list[str]:
    """Fact-text prefixes: what VocabTrim counts and the drafter distils from (not the timed biographies)."""
    texts = [t for s in ("forget", "retain") for t in world.fact_texts(s)]
    return lm.decode([ids[:6] for ids in lm.encode(texts)])


def timed_prompts(lm: HFLM, world, count: int) -> list[str]:
    """Biography prefixes (8, 12 or 16 tokens) of people spread evenly over the world, so the splits appear in
    the world's proportions (6 forget, 36 retain, 6 holdout people): ULD rewrites what it forgets, which a
    drafter can hardly predict, and a forget-heavy sample would measure mostly that."""
    bios = [lm.encode([b])[0] for s in ("forget", "retain", "holdout") for b in world.biographies(s)]
    picked = [i * len(bios) // count for i in range(count)] if count <= len(bios) else range(len(bios))
    return lm.decode([bios[i][: (8, 12, 16)[k % 3]] for k, i in enumerate(picked)])


def step_cost(step, ids: torch.Tensor, repeats: int = 200) -> float:
    """Median seconds of one batch-1 decoding step after a prefill of `ids`, cache rolled back each time."""
    from memorylab.decoding.speculative import drop_last

    _, past = step(ids, None, None)
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        step(ids[:, -1:], None, past)
        times.append(time.perf_counter() - began)
        drop_last(past, 1)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--vocabs", type=int, nargs="*", default=[256, 512, 1024])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--target-steps", type=int, default=300)
    ap.add_argument("--drafter-steps", type=int, default=300)
    ap.add_argument("--assistant-steps", type=int, default=80)  # the unlearning scenarios' ULD default
    ap.add_argument("--workdir", help="where the models are trained and kept (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="12 prompts, 3 repetitions")
    args = ap.parse_args()
    if args.quick:
        args.prompts, args.reps = min(args.prompts, 12), min(args.reps, 3)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="bench-spec-") as tmp:
        folder = Path(args.workdir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        result = run(args, *build_models(folder, args))
    print(json.dumps(result))


def variants_of(args, target: HFLM, uld: ULDLM, drafter_dir: str) -> dict[str, tuple]:
    """name -> (model, params): plain, speculative per drafter head size, adaptive gamma, and ULD drafted by
    the target's drafter (named by path: the drafter attached to ULD is its own)."""
    def params(**spec):
        return GenerationParams(max_new_tokens=args.new_tokens,
                                speculative=SpeculativeParams(**{"gamma": args.gamma, **spec}) if spec else None)
    variants = {"target_plain": (target, params()), "uld_plain": (uld, params())}
    for vocab in [None, *args.vocabs]:
        for name, lm in (("target", target), ("uld", uld)):
            variants[f"{name}_spec_{vocab or 'full'}"] = (lm, params(vocab=vocab))
    variants["target_spec_full_adaptive"] = (target, params(adaptive=True))
    variants["uld_spec_full_adaptive"] = (uld, params(adaptive=True))
    variants["uld_spec_target_drafter"] = (uld, params(drafter=drafter_dir))
    return variants


def time_variants(variants: dict, prompts: list[str], reps: int):
    """Median wall and thread-CPU seconds of each variant, its texts and its speculative figures. The variants
    take turns, so a change of the machine's load affects all alike; CPU time leaves out the time other
    processes held the core, the steadier figure on a shared machine."""
    wall, cpu = {name: [] for name in variants}, {name: [] for name in variants}
    outputs, stats = {}, {}
    for _ in range(reps):
        for name, (lm, params) in variants.items():
            began, began_cpu = time.perf_counter(), time.thread_time()
            outputs[name] = lm.generate(prompts, params)
            wall[name].append(time.perf_counter() - began)
            cpu[name].append(time.thread_time() - began_cpu)
            if params.speculative is not None:
                stats[name] = lm.speculative_stats.as_dict()
    return ({n: statistics.median(t) for n, t in wall.items()}, {n: statistics.median(t) for n, t in cpu.items()},
            outputs, stats)


def run(args, world, target_dir: str, drafter_dir: str, assistant_dir: str, uld_drafter_dir: str) -> dict:
    target = HFLM.load(target_dir, device="cpu", batch_size=1)
    uld = ULDLM(target, HFLM.load(assistant_dir, device="cpu", batch_size=1), alpha=ALPHA, r=R)
    target.drafter, uld.drafter = load_drafter(drafter_dir), load_drafter(uld_drafter_dir)
    prompts = timed_prompts(target, world, args.prompts)
    ids = torch.tensor([target._with_start(prompts[:1])[0]])
    cost_target = step_cost(lambda x, m, p: target.next_token_logits(x, m, p), ids)
    cost_drafter = step_cost(lambda x, m, p: target.drafter.step(x, m, None, p), ids)
    cost_ratio = cost_target / cost_drafter

    variants = variants_of(args, target, uld, drafter_dir)
    wall, cpu, outputs, stats = time_variants(variants, prompts, args.reps)
    model = {name: name.split("_")[0] for name in variants}  # target or uld
    tokens = {m: sum(len(ids) for ids in target.encode(outputs[f"{m}_plain"])) for m in ("target", "uld")}
    speed = {name: tokens[model[name]] / t for name, t in wall.items()}
    speed_cpu = {name: tokens[model[name]] / t for name, t in cpu.items()}
    same = {name: outputs[name] == outputs[f"{model[name]}_plain"] for name in variants}

    print(f"cost per batch-1 step: target {cost_target * 1e3:.3f} ms, drafter {cost_drafter * 1e3:.3f} ms, "
          f"ratio {cost_ratio:.1f} (goal >= {GOALS['cost_ratio']})")
    print(f"{len(prompts)} prompts, {tokens['target']} target / {tokens['uld']} ULD tokens, gamma {args.gamma}, "
          f"median of {args.reps}; load average {os.getloadavg()[0]:.2f}")
    print(f"  {'variant':28s} tokens/s (wall, cpu)  same text  acceptance  tokens/round")
    for name in variants:
        st = stats.get(name)
        acc = f"{st['acceptance_rate']:10.3f}  {st['tokens_per_round']:12.2f}" if st else ""
        print(f"  {name:28s} {speed[name]:8.1f} {speed_cpu[name]:8.1f}  {str(same[name]):9s}  {acc}")

    def ratios(s: dict) -> dict[str, float]:
        return {"speedup_target": s["target_spec_full"] / s["target_plain"],
                "speedup_uld_vs_plain_target": s["uld_spec_full"] / s["target_plain"],
                "speedup_uld": s["uld_spec_full"] / s["uld_plain"]}
    figures = {k: round(v, 4) for k, v in ratios(speed).items()}
    return {"bench": "speculative", "ratio": figures["speedup_target"], **figures,
            "by_cpu_time": {k: round(v, 4) for k, v in ratios(speed_cpu).items()},
            "acceptance": {name: round(st["acceptance_rate"], 4) for name, st in stats.items()},
            "tokens_per_s": {name: round(v, 1) for name, v in speed.items()},
            "same_as_plain": all(same.values()), "cost_ratio": round(cost_ratio, 2), "gamma": args.gamma,
            "prompts": len(prompts), "reps": args.reps, "load_average": round(os.getloadavg()[0], 2),
            "goals": GOALS}


if __name__ == "__main__":
    main()
