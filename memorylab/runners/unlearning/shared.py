"""The models an unlearning run starts from: a target (forget + retain) and a retrain reference (retain only),
trained here in parallel unless `reference` names them, and with eval.speculative.drafter 'train' a drafter.

A sweep whose swept settings leave these models alone trains them once (`prepare_shared`, the kind's
SharedSetup in memorylab.scenario.KINDS) and every trial unlearns from them, as `reference` overrides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from memorylab.models.train_jobs import prepare_tokenizer, train_models
from memorylab.runners.eval_drafter import DRAFTER, trains_drafter
from memorylab.runners.unlearning.data import UnlearningData, unlearning_data
from memorylab.schema.unlearning import UnlearningScenario


def reference_models(scenario: UnlearningScenario, data: UnlearningData, tokenizer_dir: Path,
                     out_dir: Path) -> dict[str, dict[str, Any]]:
    """The target and the retrain reference, {"path": ...} each: those `reference` names, the others trained
    now (with their training figures); and with eval.speculative.drafter 'train' the drafter, trained at the
    same time on the target's corpus (it must predict what the target says)."""
    refs = {"target": scenario.reference.target, "retrain": scenario.reference.retrain}
    corpora = {"target": data.target_corpus, "retrain": data.retrain_corpus}
    if trains_drafter(scenario):
        refs[DRAFTER], corpora[DRAFTER] = None, data.target_corpus
    todo = {n: c for n, c in corpora.items() if refs[n] is None}
    trained = train_models(todo, scenario.model, scenario.train, scenario.resources.trainer, tokenizer_dir,
                           out_dir, scenario.seed, drafters=[DRAFTER]) if todo else {}
    return {n: trained.get(n) or {"path": refs[n]} for n in corpora}


def prepare_shared(scenario: UnlearningScenario, folder: Path, scenario_path: Optional[Path]) -> dict[str, str]:
    """Train (or reuse, when `folder` already holds them) the models every trial of a sweep starts from: target,
    retrain and (eval.speculative.drafter 'train') the drafter, which trials then name instead of training."""
    cache = {"reference.evaluations": str((folder / "evaluations").absolute())}
    given = {"target": scenario.reference.target, "retrain": scenario.reference.retrain}
    if all(given.values()) and not trains_drafter(scenario):
        return cache  # nothing to train: the trials share the evaluations of the models they name
    data = unlearning_data(scenario, scenario_path.parent if scenario_path else None)
    tokenizer_dir = prepare_tokenizer(scenario.model, data.tokenizer_texts, folder / "tokenizer")
    # Only what was trained here gets an absolute path; a given reference (a hub id, say) stays as written.
    paths = {name: given.get(name) or str(Path(m["path"]).absolute())
             for name, m in reference_models(scenario, data, tokenizer_dir, folder).items()}
    drafter = {"eval.speculative.drafter": paths.pop(DRAFTER)} if DRAFTER in paths else {}
    return {**{f"reference.{name}": path for name, path in paths.items()}, **drafter, **cache}
