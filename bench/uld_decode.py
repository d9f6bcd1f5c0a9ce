"""ULD greedy decoding speed: the target alone vs ULD (target - alpha * assistant), in-process and on Ray.

Run: .venv/bin/python bench/uld_decode.py

Compares tokens/s of greedy decoding on the same prompts (biography prefixes of the synthetic world) for
  (a) the target alone, HFLM in-process;
  (b) ULDLM in-process (what one ModelActor hosting ULD runs);
  (c) one ModelActor hosting ULD (assistant_source=...), called through RemoteLM;
  (d) two ModelActors (target, assistant) in one STRICT_PACK group, stepped in lockstep (LockstepULD).
In-process timings use torch.set_num_threads(1) and every actor has num_cpus=1 (one torch thread), so each
forward gets one core everywhere; (d) uses two cores at once (one per actor). Best of 3 repetitions.
ratio = tokens/s (b) / tokens/s (a): the price of ULD over plain decoding; goal >= 0.8.
The last line is one JSON object.
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
from memorylab.decoding.lockstep import LockstepULD
from memorylab.decoding.loop import decode
from memorylab.decoding.uld import ULDLM
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import GenerationParams
from memorylab.models.tiny import build_tiny_model
from memorylab.models.trainer import train_causal_lm
from memorylab.runners.world_models import corpus, prepare_tokenizer, tokenizer_texts
from memorylab.scenario import ActorResources, ModelSpec, TinyModelConfig, TrainConfig, WorldConfig
from memorylab.unlearn.uld import build_assistant, merge_assistant

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


def best_time(fn, reps: int) -> tuple[float, list[str]]:
    best, out = float("inf"), None
    for _ in range(reps):
        began = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - began)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    # 0 by default: a briefly trained target ends most rows at EOS within a few tokens, and then the figures
    # measure prefill, not decoding; untrained models run every row for all --new-tokens.
    ap.add_argument("--train-steps", type=int, default=0)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    params = GenerationParams(max_new_tokens=args.new_tokens)

    with tempfile.TemporaryDirectory(prefix="bench-uld-") as tmp:
        world, spec, target_dir, assistant_dir = build_models(Path(tmp), args.train_steps)
        target = HFLM.load(target_dir, device="cpu", batch_size=args.batch_size)
        assistant = HFLM.load(assistant_dir, device="cpu", batch_size=args.batch_size)
        uld = ULDLM(target, assistant, alpha=ALPHA, r=R)
        prompts = biography_prompts(target, world, args.prompts)
        n_target, n_uld = new_tokens(target, prompts, params), new_tokens(uld, prompts, params)

        t_target, _ = best_time(lambda: target.generate(prompts, params), args.reps)
        t_uld, uld_out = best_time(lambda: uld.generate(prompts, params), args.reps)

        with ray_session(num_cpus=2):
            one_cpu = ActorResources(num_cpus=1)
            one = create_model_actor("target", target_dir, ModelSpec(device="cpu"), one_cpu,
                                     batch_size=args.batch_size, assistant_source=assistant_dir,
                                     uld_alpha=ALPHA, uld_r=R)
            remote = RemoteLM(one)
            ray.get(one.info.remote())  # loaded before the clock starts
            t_one, one_out = best_time(lambda: remote.generate(prompts, params), args.reps)
            ray.kill(one)

            pg = strict_pack_group([{"CPU": 1}, {"CPU": 1}], timeout_s=60)
            try:
                handles = [create_model_actor(role, path, ModelSpec(device="cpu"), one_cpu, batch_size=args.batch_size,
                                              placement_group=pg, bundle_index=i)
                           for i, (role, path) in enumerate([("target", target_dir), ("assistant", assistant_dir)])]
                lockstep = LockstepULD(*handles, alpha=ALPHA, r=R)
                t_two, two_out = best_time(lambda: lockstep.generate(prompts, params), args.reps)
            finally:
                remove_group(pg)

    if not (uld_out == one_out == two_out):
        print("WARNING: the ULD placements generated different texts", file=sys.stderr)
    figures = {
        "tokens_per_s_target": n_target / t_target,
        "tokens_per_s_uld": n_uld / t_uld,
        "tokens_per_s_uld_one_actor": n_uld / t_one,
        "tokens_per_s_uld_two_actors": n_uld / t_two,
    }
    print(f"prompts {len(prompts)}, new tokens: target {n_target}, ULD {n_uld}; best of {args.reps}")
    for k, v in figures.items():
        print(f"  {k:30s} {v:9.1f}")
    print(f"  same ULD texts in all three placements: {uld_out == one_out == two_out}")
    result = {"bench": "uld_decode", "ratio": round(figures["tokens_per_s_uld"] / figures["tokens_per_s_target"], 4),
              **{k: round(v, 1) for k, v in figures.items()}, "goal": GOAL}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
