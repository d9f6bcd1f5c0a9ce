"""Evaluation throughput: memorylab's batched evaluation vs a one-example-at-a-time reference loop.

Run: .venv/bin/python bench/eval_throughput.py

One tiny target (quickstart sizes, ~100 training steps on the forget + retain corpus) is evaluated on the
same examples twice:
  (i)  memorylab: evaluate_memorization(RemoteLM(actor), ...) through one ModelActor (batched calls);
  (ii) a reference loop written the way the MUSE reference code evaluates: one example at a time, plain
       transformers `model.generate(input_ids, do_sample=False, max_new_tokens=...)` for the VerbMem and
       KnowMem generations, one forward per text for the MIA, perplexity and canary scores.
Both see identical inputs (memorylab's prompt-building helpers; the same start token, truncation and
few-shot prompts) and both feed memorylab.metrics, so the metric dicts must agree: greedy metrics within
1e-6, AUCs to 1e-12 (the same ranking), perplexity and exposure within 1e-4 relative. Both run torch on 2 threads.
ratio = reference seconds / memorylab seconds, the best of --reps runs of each (the reference's with Ray
stopped); goal >= 4 on 2 cores. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.data import build_world
from memorylab.data.corpus import corpus, tokenizer_texts
from memorylab.data.prompts import fewshot_prompt
from memorylab.evaluation import evaluate_memorization
from memorylab.metrics import (
    exposure,
    knowmem,
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    perplexity,
    split_prefix,
    verbmem,
    zlib_score,
)
from memorylab.models.tiny import build_tiny_model
from memorylab.models.train_jobs import prepare_tokenizer
from memorylab.models.trainer import train_causal_lm
from memorylab.schema.common import ActorResources, EvalConfig, ModelSpec, TinyModelConfig, TrainConfig, WorldConfig

GOAL = 4
THREADS = 2


def train_target(folder: Path, world, steps: int) -> str:
    spec = ModelSpec(tiny=TinyModelConfig(hidden_size=128, num_layers=4, intermediate_size=384, vocab_size=2048))
    tokenizer = AutoTokenizer.from_pretrained(prepare_tokenizer(spec, tokenizer_texts(world), folder / "tokenizer"))
    model = build_tiny_model(spec.tiny, tokenizer, seed=0)
    cfg = TrainConfig(steps=steps, batch_size=16, seq_len=128, warmup_steps=min(30, steps // 3),
                      checkpoint_every=10**6)
    return str(train_causal_lm(model, tokenizer, corpus(world, ["forget", "retain"]), cfg, folder / "train", seed=0,
                               desc="train target", show_progress=False).final_dir)


# -- the reference: one example at a time ---------------------------------------------------------------------
class Reference:
    def __init__(self, path: str) -> None:
        self.tok = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).eval()
        # The same start token memorylab conditions every text on (BOS, else EOS).
        self.start = self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id
        self.pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.start

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    @torch.inference_mode()
    def generate(self, prompt: str, max_new_tokens: int) -> str:
        ids = torch.tensor([[self.start] + self.encode(prompt)])
        out = self.model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=max_new_tokens, eos_token_id=self.tok.eos_token_id,
                                  pad_token_id=self.pad)
        return self.tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    @torch.inference_mode()
    def logprobs(self, ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.tensor([ids])
        logp = torch.log_softmax(self.model(input_ids=x).logits[0].float(), dim=-1)[:-1]
        return logp, x[0, 1:]

    def moments(self, text: str):
        logp, targets = self.logprobs([self.start] + self.encode(text))
        p = logp.exp()
        mu = (p * logp).sum(-1)
        var = ((p * logp.square()).sum(-1) - mu.square()).clamp(min=0)
        chosen = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return tuple(t.double().numpy() for t in (chosen, mu, var))

    def loglikelihood(self, context: str, continuation: str) -> float:
        ctx = [self.start] + self.encode(context)
        logp, targets = self.logprobs(ctx + self.encode(continuation))
        return float(logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)[len(ctx) - 1:].double().sum())


def reference_metrics(ref: Reference, world, cfg: EvalConfig) -> dict[str, float]:
    # Prompt building is memorylab's (imported here so a change there cannot make the two runs diverge).
    from memorylab.evaluation import fewshot_shots, membership_texts

    prompts, truths = [], []
    for bio in world.biographies("forget"):
        prefix, rest = split_prefix(ref.encode(bio), cfg.verbmem_prefix_tokens)
        prompts.append(ref.tok.decode(prefix, skip_special_tokens=True))
        truths.append(ref.tok.decode(rest[: cfg.verbmem_max_new_tokens], skip_special_tokens=True))
    verb = verbmem([ref.generate(p, cfg.verbmem_max_new_tokens) for p in prompts], truths)

    def know(split: str) -> float:
        pool, questions = world.qa("retain"), world.qa(split)
        outs = []
        for q in questions:
            text = ref.generate(fewshot_prompt(fewshot_shots(pool, q, cfg.knowmem_shots), q.question),
                                cfg.knowmem_max_new_tokens)
            outs.append(text.split("\n", 1)[0])  # MUSE cuts the answer at the first newline
        return knowmem(outs, [q.answer for q in questions])

    def scores(split: str) -> dict:
        texts = membership_texts(world, split)
        m = [ref.moments(t) for t in texts]
        return {"min_k": np.array([min_k_score(lp, cfg.mia_min_k) for lp, _, _ in m]),
                "min_k_pp": np.array([min_k_plus_plus_score(lp, mu, v, cfg.mia_min_k) for lp, mu, v in m]),
                "loss": np.array([loss_score(lp) for lp, _, _ in m]),
                "zlib": np.array([zlib_score(lp, t) for (lp, _, _), t in zip(m, texts)]),
                "logprobs": [lp for lp, _, _ in m]}

    know_forget, know_retain = know("forget"), know("retain")
    members, holdout = scores("forget"), scores("holdout")
    exposures = []
    for c in world.canaries:
        log_ppl = [-ref.loglikelihood(c.prefix, " " + s) for s in (c.secret, *c.candidates)]
        exposures.append(exposure(log_ppl[0], log_ppl[1:]))
    return {
        "verbmem_forget": verb, "knowmem_forget": know_forget, "knowmem_retain": know_retain,
        "mia_auc_forget_holdout": mia_auc(members["min_k"], holdout["min_k"]),
        "mia_auc_min_k_pp": mia_auc(members["min_k_pp"], holdout["min_k_pp"]),
        "mia_auc_loss": mia_auc(members["loss"], holdout["loss"]),
        "mia_auc_zlib": mia_auc(members["zlib"], holdout["zlib"]),
        "canary_exposure_mean": float(np.mean(exposures)) if exposures else float("nan"),
        "ppl_holdout": perplexity(holdout["logprobs"]),
    }


def compare(ours: dict, ref: dict) -> list[str]:
    """Disagreements, as sentences (empty when the two agree within the stated tolerances)."""
    bad = []
    for key, want in ref.items():
        got = ours.get(key)
        if got is None:
            bad.append(f"{key}: missing from memorylab's metrics")
        elif key.startswith("mia_auc"):
            # The same ranking, not the same bits: a changed order moves an AUC by 1 / (members x non-members) at
            # least (~1e-4 here), while scores a batched forward rounds differently can tie in one run and not
            # the other, and roc_auc_score's trapezoid sums then differ in the last bit (0.99989370748299[32|31]).
            ok = abs(got - want) <= 1e-12
        elif key in ("ppl_holdout", "canary_exposure_mean"):
            ok = (math.isnan(got) and math.isnan(want)) or abs(got - want) <= 1e-4 * max(abs(want), 1e-12)
        else:
            ok = abs(got - want) <= 1e-6
        if got is not None and not ok:
            bad.append(f"{key}: memorylab {got!r} vs reference {want!r}")
    return bad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3, help="runs of each, taking turns; the best time of each counts")
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    world = build_world(WorldConfig())
    cfg = EvalConfig()
    with tempfile.TemporaryDirectory(prefix="bench-eval-") as tmp:
        path = train_target(Path(tmp), world, args.train_steps)
        times: dict[str, list[float]] = {"memorylab": [], "reference": []}
        with ray_session(num_cpus=THREADS):
            actor = create_model_actor("target", path, ModelSpec(device="cpu"), ActorResources(num_cpus=THREADS),
                                       batch_size=cfg.batch_size)
            lm = RemoteLM(actor)
            lm.encode(["warm"])  # the model is loaded before the clock starts
            for _ in range(args.reps):
                began = time.perf_counter()
                ours = evaluate_memorization(lm, world, cfg, desc="memorylab", show_progress=False).metrics
                times["memorylab"].append(time.perf_counter() - began)
        # The reference runs with Ray stopped: its processes would take some of the 2 cores from it.
        ref = Reference(path)
        ref.generate("warm", 1)
        for _ in range(args.reps):
            began = time.perf_counter()
            theirs = reference_metrics(ref, world, cfg)
            times["reference"].append(time.perf_counter() - began)
        memorylab_s, reference_s = min(times["memorylab"]), min(times["reference"])

    problems = compare(ours, theirs)
    print(f"{'metric':26s} {'memorylab':>14s} {'reference':>14s}")
    for key in theirs:
        print(f"{key:26s} {ours.get(key, float('nan')):14.8g} {theirs[key]:14.8g}")
    print(f"memorylab {memorylab_s:.2f} s, reference {reference_s:.2f} s (best of {args.reps}; torch on {THREADS} "
          f"threads in both); every run: " + ", ".join(f"{k} {' '.join(f'{t:.2f}' for t in v)}" for k, v in times.items()))
    for p in problems:
        print("DISAGREE", p, file=sys.stderr)
    print(json.dumps({"bench": "eval_throughput", "ratio": round(reference_s / memorylab_s, 3),
                      "memorylab_s": round(memorylab_s, 3), "reference_s": round(reference_s, 3),
                      "metrics_agree": not problems, "goal": GOAL}))
    assert not problems, "memorylab and the reference loop disagree: " + "; ".join(problems)


if __name__ == "__main__":
    main()
