"""The attacks of an unlearning run: every measured model (target, retrain, each method's) attacked by every
attack of `attacks:`, one Ray task per model, all at once as resources allow.

A task loads its model once, measures its forget figures as it is (the `unattacked` figures each attack's
recovery starts from, measured in the same process as the attacked ones), then runs the attacks one after
another, each on a fresh copy of the weights.

The report's `recovered.<metric>` is the share of what the model had forgotten that the attack brings back:

    kept_before = unattacked / target,   kept_after = after / target under the attack,
    recovered = (kept_after - kept_before) / (1 - kept_before),   clipped to [0, 1],

each figure measured on the same items (relearning: the forget people not relearned on). For an attack on the
weights the target's figure is the same before and after (it is the target as it is), and this is the issue's
(after - unlearned) / (target - unlearned). For an attack on the prompts the target is asked the same way: a
reworded question is harder for every model, and only the share of what the wording can still draw out of a
model that forgot nothing counts. Null where the target minus the model is under RECOVERY_FLOOR (nothing was
forgotten: the target itself, a method that forgot nothing) or where the target itself scores under it asked
that way (the attack draws nothing out of any model).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import ray

from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.cluster.waiting import wait_all
from memorylab.runners.unlearning.evaluation_cache import model_fingerprint, store, stored
from memorylab.unlearn.attacks.attack import FIGURES, AttackBench, AttackOutcome, AttackSettings, AttackSubject

RECOVERY_FLOOR = 0.05  # the smallest forgotten share (target - unlearned, on a 0-1 metric) a recovery is read on


def load_subject(path: str, assistant: Any, device: str, batch_size: int) -> AttackSubject:
    """The model at `path` (with a ULD model's assistant, an AssistantDecoding, or None) in this process."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
    subject = AttackSubject(model, tokenizer, batch_size=batch_size, device=device)
    if assistant is not None:
        subject.assistant = AutoModelForCausalLM.from_pretrained(assistant.path).to(device).eval()
        subject.alpha, subject.r = assistant.alpha, assistant.r
    return subject


def attack_task(attacks: list[AttackSettings], path: str, assistant: Any, bench: AttackBench, threads: int,
                device: str) -> dict[str, Any]:
    """Runs in a Ray worker: {"unattacked": figures, "attacks": {key: AttackOutcome}} of one model."""
    import torch

    torch.set_num_threads(threads)
    subject = load_subject(path, assistant, device, bench.eval.batch_size)
    outcomes: dict[str, AttackOutcome] = {}
    for attack in attacks:
        torch.manual_seed(bench.seed)
        outcomes.update(attack.run(subject.copy(), bench))
    return {"unattacked": bench.measure(subject.lm()), "attacks": outcomes}


def _encode(result: dict[str, Any]) -> dict[str, Any]:
    return {"unattacked": result["unattacked"],
            "attacks": {k: {"after": o.after, "unattacked": o.unattacked} for k, o in result["attacks"].items()}}


def _decode(entry: dict[str, Any]) -> dict[str, Any]:
    return {"unattacked": entry["unattacked"],
            "attacks": {k: AttackOutcome(o["after"], o["unattacked"]) for k, o in entry["attacks"].items()}}


def run_attacks(scenario: Any, data: Any, models: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every model of `models` (name -> Measured) under every attack: name -> its attack results. The target's
    and the retrain's come from `reference.evaluations` when a run before measured them alike (a sweep)."""
    res = scenario.resources.model
    task = ray.remote(attack_task).options(**actor_options(res), max_retries=0)
    bench = AttackBench(data, scenario.eval.model_copy(update={"speculative": None}), scenario.seed)
    bench_ref = ray.put(bench)
    threads, device = torch_threads(res), device_for(res, scenario.model.device)
    settings = scenario.model_dump(mode="json", include={"seed", "world", "data", "eval", "model", "attacks"})
    refs, results, keys = {}, {}, {}
    for name, model in models.items():
        folder = scenario.reference.evaluations if name in ("target", "retrain") else None
        assistant = None if model.assistant is None else model_fingerprint(model.assistant.path)
        keys[name] = (folder, {"attacks": settings, "weights": model_fingerprint(model.path), "assistant": assistant})
        found = stored(*keys[name], _decode)
        if found is not None:
            results[name] = found
        else:
            refs[name] = task.remote(list(scenario.attacks), model.path, model.assistant, bench_ref, threads, device)
    for name, result in zip(refs, wait_all(list(refs.values()), "attack")):
        store(*keys[name], result, _encode)
        results[name] = result
    return {name: results[name] for name in models}


def recovered(after: Optional[float], unattacked: Optional[float], target: Optional[float],
              target_attacked: Optional[float] = None) -> Optional[float]:
    """The share of what was forgotten that the attack brought back, in [0, 1]; None below the floors.
    `target_attacked`: the target's figure under the same (prompt) attack; default: `target`."""
    ceiling = target if target_attacked is None else target_attacked
    if None in (after, unattacked, target, ceiling) or target - unattacked < RECOVERY_FLOOR or ceiling < RECOVERY_FLOOR:
        return None
    kept_before = unattacked / target
    return min(1.0, max(0.0, (after / ceiling - kept_before) / (1.0 - kept_before)))


def attack_figures(scenario: Any, results: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """name -> {"attacks": {key: {metric, ..., "unattacked": {...}, "recovered": {...}}}, "robustness": {...}}:
    what report.json lists under each model. `robustness` holds the worst case over the attacks: the highest
    recovery of each figure and the attack that reached it."""
    changes = {key: attack.changes for attack in scenario.attacks for key in attack.keys()}
    target = results["target"]
    figures = {}
    for name, result in results.items():
        entries = {}
        for key, outcome in result["attacks"].items():
            base = outcome.unattacked or result["unattacked"]
            ref = target["attacks"][key]
            plain = ref.unattacked or target["unattacked"]
            asked = plain if changes[key] == "weights" else ref.after
            entries[key] = {**outcome.after, "unattacked": base,
                            "recovered": {m: recovered(outcome.after.get(m), base.get(m), plain.get(m), asked.get(m))
                                          for m in FIGURES}}
        figures[name] = {"attacks": entries, "robustness": worst_case(entries)}
    return figures


def worst_case(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The highest recovery of each figure over the attacks (None when none is known) and the attack behind it."""
    worst: dict[str, Any] = {}
    for metric in FIGURES:
        scored = {k: e["recovered"][metric] for k, e in entries.items() if e["recovered"][metric] is not None}
        key = max(scored, key=scored.get) if scored else None
        worst[f"worst_recovered_{metric}"] = scored[key] if key else None
        worst[f"worst_attack_{metric}"] = key
    return worst
