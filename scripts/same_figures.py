"""Do two checkouts report the same figures? Run the quickstart (also with speculative decoding), unlearn, tofu_tiny
and continual_replay scenarios at reduced size with one checkout, then again with another (say, before and after a refactoring), and compare
every number their report.json files hold.

    python scripts/same_figures.py run OUT_DIR [--only NAME ...]  # with the memorylab this interpreter imports
    python scripts/same_figures.py compare OLD_DIR NEW_DIR

`run` (from a checkout's root) calls `python -m memorylab.cli run` on its scenarios, so PYTHONPATH=/path/to/checkout runs that
checkout's code with this environment's packages. `compare` walks both reports and prints every number that
differs (timings, versions, paths and speeds are not figures of the scenario and are skipped); it exits 1 when
one does. The reduced sizes keep every unlearning method, the scalability and sustainability phases, and the
continual arms and retention probes, so each code path that produces a figure runs.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

SCENARIOS = Path("scenarios")  # of the checkout the command runs in
SMALL_WORLD = ["world.num_people=16", "world.forget=4", "world.holdout=3", "world.canaries=2",
               "world.canary_candidates=49", "model.tiny.hidden_size=64", "model.tiny.intermediate_size=128",
               "model.tiny.num_layers=2", "model.tiny.vocab_size=600", "train.steps=120", "ray.num_cpus=2"]
SHORT_METHODS = [f"methods.{i}.steps=8" for i in range(5)]
# run name -> (scenario file, overrides)
RUNS: dict[str, tuple[str, list[str]]] = {
    "quickstart": ("quickstart", SMALL_WORLD),
    "quickstart_speculative": ("quickstart", SMALL_WORLD + ["eval.speculative={drafter: train}"]),
    "unlearn": ("unlearn", SMALL_WORLD + SHORT_METHODS + [
        "methods.5.steps=20", "scalability.sizes=[2,4]", "sustainability.requests=2"]),
    "tofu": ("tofu_tiny", ["model.tiny.hidden_size=64", "model.tiny.intermediate_size=128", "model.tiny.num_layers=2",
                           "model.tiny.max_position_embeddings=512", "train.steps=60", "data.retain_authors=2",
                           "data.retain_eval_items=20", "ray.num_cpus=2",
                           *SHORT_METHODS[:4], "methods.4.steps=10"]),
    "continual_replay": ("continual_replay", [
        "world.num_people=12", "world.forget=2", "world.holdout=2", "world.paraphrases=1",
        "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64", "model.tiny.num_layers=2",
        "model.tiny.num_heads=2", "model.tiny.vocab_size=400", "train.steps=20", "train.batch_size=8",
        "eval.knowmem_max_new_tokens=6", "new_data.people=4", "continual.steps=24", "continual.batch_size=8",
        "continual.eval_every=8", "continual.eval_questions=12", "continual.eval_documents=12",
        "retention.probes=3", "retention.insert_at=8", "retention.repeats=[1,2]", "ray.num_cpus=2"]),
}
# Keys whose values describe the run, not the scenario's figures; so do times (`*_seconds`, `*_s`).
NOT_FIGURES = {"versions", "seconds", "path", "raw_config", "scenario_file", "resumed_from", "config"}


def run(out: Path, only: list[str]) -> None:
    for name, (scenario, overrides) in RUNS.items():
        if only and name not in only:
            continue
        args = [sys.executable, "-m", "memorylab.cli", "run", str(SCENARIOS / f"{scenario}.yaml"),
                "--out", str(out / name), "--overwrite"] + [a for o in overrides for a in ("--set", o)]
        print("$", " ".join(args[3:]), flush=True)
        subprocess.run(args, check=True)


def numbers(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every number (and null) in a report, by its dotted path."""
    if isinstance(value, dict):
        for key, child in value.items():
            if key not in NOT_FIGURES and not key.endswith(("_seconds", "_s")):
                yield from numbers(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from numbers(child, f"{path}.{i}")
    elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        yield path, value


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(old: Path, new: Path) -> int:
    differ = 0
    for name in RUNS:
        before = dict(numbers(json.loads((old / name / "report.json").read_text())))
        after = dict(numbers(json.loads((new / name / "report.json").read_text())))
        changed = sorted(p for p in before.keys() & after.keys() if not same(before[p], after[p]))
        only = sorted(before.keys() ^ after.keys())
        for path in changed:
            print(f"{name}: {path}: {before[path]!r} -> {after[path]!r}")
        for path in only:
            print(f"{name}: {path}: only in {'the old' if path in before else 'the new'} report")
        print(f"{name}: {len(before.keys() & after.keys()) - len(changed)} figures equal, {len(changed)} differ, "
              f"{len(only)} in one report only")
        differ += len(changed) + len(only)
    return 1 if differ else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run")
    run_parser.add_argument("out", type=Path)
    run_parser.add_argument("--only", nargs="*", default=[], choices=list(RUNS), help="these runs alone")
    compare_parser = sub.add_parser("compare")
    compare_parser.add_argument("old", type=Path)
    compare_parser.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.only)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
