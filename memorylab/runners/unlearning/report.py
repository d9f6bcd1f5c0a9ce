"""The unlearning report: findings in words, tables and plots from the unlearning runner's report dict.

Kept apart from the runner so that a report can be re-rendered from a report.json alone (values that were NaN
come back as null; every function here takes None and NaN alike and prints "n/a"); the charts are in plots.py.

Two derived figures, both relative to the target (the model before unlearning), as in MUSE:
- forget efficacy = 1 − KnowMem_forget / KnowMem_forget(target): 0 = nothing forgotten, 1 = all of it;
- utility = KnowMem_retain / KnowMem_retain(target): 1 = retained knowledge intact, 0 = all of it lost.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Optional, Sequence

from memorylab.metrics import catalog
from memorylab.report import fmt, markdown_table
from memorylab.runners.eval_drafter import speculative_markdown

REFERENCES = ("target", "retrain")
UTILITY_KEPT = 0.9      # a method "keeps utility" at or above this fraction of the target's retained knowledge
UTILITY_COLLAPSED = 0.5  # below this fraction a method has collapsed


def pick_figures(metrics: dict[str, float]) -> dict[str, Any]:
    """The catalog's figures among a model's, the way the report lists them."""
    return catalog.in_order(metrics)


def finite(value: Any) -> Optional[float]:
    """A finite float, or None for None / NaN / infinities / non-numbers."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _ratio(num: Any, den: Any) -> Optional[float]:
    n, d = finite(num), finite(den)
    if n is None or d is None or abs(d) < 1e-12:  # a target that knew nothing gives no scale
        return None
    return n / d


def forget_efficacy(m: Mapping[str, Any], target: Mapping[str, Any]) -> Optional[float]:
    """1 − KnowMem_forget / KnowMem_forget(target); None when either is missing or the target's is 0."""
    r = _ratio(m.get("knowmem_forget"), target.get("knowmem_forget"))
    return None if r is None else 1.0 - r


def utility(m: Mapping[str, Any], target: Mapping[str, Any]) -> Optional[float]:
    """KnowMem_retain / KnowMem_retain(target); None when either is missing or the target's is 0."""
    return _ratio(m.get("knowmem_retain"), target.get("knowmem_retain"))


def metric_keys(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The catalog's figures that some model reports (the TOFU columns appear only for TOFU runs, the world's
    only for world runs)."""
    models = report.get("models", {})
    always = catalog.COMMON_NAMES if report.get("data", {}).get("source") == "tofu" else catalog.WORLD_NAMES
    return tuple(k for k in catalog.NAMES if k in always or any(k in m for m in models.values()))


def report_fields(scenario: Any) -> set[str]:
    """Dotted paths of the numbers an unlearning report holds for `scenario` (what a sweep may optimise):
    every metric of every model, each method's time and last loss, the run's total time, and with `attacks:`
    each model's figures under each attack, their recovered shares and the worst case over the attacks."""
    metrics = catalog.names(tofu=scenario.data.source == "tofu")
    labels = [m.name for m in scenario.methods]
    names = (*REFERENCES, *labels)
    attacked = ("knowmem_forget", "verbmem_forget")
    attack_fields = {f"models.{name}.attacks.{key}.{part}{m}" for name in names for a in scenario.attacks
                     for key in a.keys() for part in ("", "recovered.", "unattacked.") for m in attacked}
    if scenario.attacks:
        attack_fields |= {f"models.{name}.robustness.worst_recovered_{m}" for name in names for m in attacked}
    return (attack_fields | {f"models.{name}.{k}" for name in names for k in metrics}
            | {f"methods.{label}.{k}" for label in labels for k in ("seconds", "final_loss")}
            | {"timings_s.total"})


def method_labels(report: Mapping[str, Any]) -> list[str]:
    """Method labels in the runner's order: those of report["methods"], then any other non-reference model."""
    models = report.get("models", {})
    labels = [label for label in report.get("methods", {}) if label in models]
    return labels + [n for n in models if n not in REFERENCES and n not in labels]


def model_order(report: Mapping[str, Any]) -> list[str]:
    models = report.get("models", {})
    return [n for n in REFERENCES if n in models] + method_labels(report)


def _is_grad_ascent(report: Mapping[str, Any], label: str) -> bool:
    method = report.get("methods", {}).get(label, {}).get("method")
    return method == "grad_ascent" or (method is None and label.startswith("grad_ascent"))


def _best(values: Mapping[str, Optional[float]], *, key=lambda x: x, highest: bool) -> Optional[str]:
    known = {n: v for n, v in values.items() if v is not None}
    if not known:
        return None
    return (max if highest else min)(known, key=lambda n: key(known[n]))


def _ties(values: Mapping[str, Optional[float]], winner: Optional[str], *, key=lambda x: x) -> str:
    """' (tied with a, b)' when other methods share the winner's value, else ''."""
    if winner is None:
        return ""
    w = key(values[winner])
    tied = [n for n, v in values.items() if n != winner and v is not None and abs(key(v) - w) < 1e-9]
    return f" (tied with {', '.join(tied)})" if tied else ""


def _signed(x: Optional[float], digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:+.{digits}f}"


# ----------------------------------------------------------------------------------------------- findings

def _winner(values: Mapping[str, Optional[float]], figure: str, what: str, sentence: Any) -> str:
    """`sentence(best)` for the method whose value of `figure` is best by the catalog's goal, or a line saying
    that no method has a value."""
    best = catalog.best(dict(values), figure)
    return f"{what}: no method has a value." if best is None else sentence(best)


def _privleak_side(value: float) -> str:
    lean = "leaning towards " if abs(value) < 5 else ""
    if value < 0:
        return f"{lean}under-unlearning: the forget set is still told apart from the holdout"
    if value > 0:
        return f"{lean}over-unlearning: the forget set stands out by being too unlikely"
    return "as indistinguishable as for the retrain model"


def findings(report: Mapping[str, Any]) -> list[str]:
    """Which method won what, each sentence with its numbers (plain sentences, no list markers)."""
    models = report["models"]
    target = models.get("target", {})
    retrain = models.get("retrain", {})
    labels = method_labels(report)
    if not labels:
        return ["No unlearning method was run: only the reference models are reported."]
    eff = {n: forget_efficacy(models[n], target) for n in labels}
    util = {n: utility(models[n], target) for n in labels}

    def metric(key: str) -> dict[str, Optional[float]]:
        return {n: finite(models[n].get(key)) for n in labels}

    def refs(key: str) -> str:
        return f"target {fmt(finite(target.get(key)))}, retrain {fmt(finite(retrain.get(key)))}"

    lines: list[str] = []
    # A collapsed model (utility < 0.5) forgets everything and leaks nothing, trivially: forgetting and privacy
    # winners are chosen among the methods that did not collapse, when there are any.
    alive = {n for n in labels if util[n] is None or util[n] >= UTILITY_COLLAPSED}
    note = " among the methods that did not collapse" if alive and alive != set(labels) else ""

    def among_alive(values: dict[str, Optional[float]]) -> dict[str, Optional[float]]:
        return {n: v for n, v in values.items() if n in alive} or values

    km = among_alive(metric("knowmem_forget"))
    lines.append(_winner(km, "knowmem_forget", "KnowMem on the forget set", lambda best: (
        f"{best} forgets the most knowledge{note}{_ties(km, best)}: KnowMem on the forget set {fmt(km[best])} "
        f"({refs('knowmem_forget')}), a forget efficacy of {fmt(eff[best])}.")))

    vm = among_alive(metric("verbmem_forget"))
    lines.append(_winner(vm, "verbmem_forget", "VerbMem on the forget set", lambda best: (
        f"{best} reproduces the least forget text verbatim{note}{_ties(vm, best)}: VerbMem {fmt(vm[best])} "
        f"({refs('verbmem_forget')}).")))

    pl = among_alive(metric("privleak"))
    lines.append(_winner(pl, "privleak", "PrivLeak", lambda best: (
        f"{best} has the PrivLeak closest to 0{note}{_ties(pl, best, key=abs)} (the MUSE criterion, neither "
        f"under- nor over-unlearning): {_signed(pl[best])}% ({_privleak_side(pl[best])}); the target's is "
        f"{_signed(finite(target.get('privleak')))}%.")))

    kr = metric("knowmem_retain")
    lines.append(_winner(kr, "knowmem_retain", "KnowMem on the retain set", lambda best: (
        f"{best} keeps the most utility{_ties(kr, best)}: KnowMem on the retain set {fmt(kr[best])} "
        f"({refs('knowmem_retain')}), utility {fmt(util[best])}.")))

    kept = {n: eff[n] for n in labels if util[n] is not None and util[n] >= UTILITY_KEPT}
    best = _best(kept, highest=True)
    if best is not None:
        lines.append(f"Best trade-off: {best}{_ties(kept, best)}, the highest forget efficacy ({fmt(eff[best])}) "
                     f"among the methods that keep utility >= {UTILITY_KEPT} (its utility {fmt(util[best])}).")
    else:
        top = _best(util, highest=True)
        tail = f" (the best is {top} with {fmt(util[top])})" if top is not None else ""
        lines.append(f"No method keeps utility >= {UTILITY_KEPT}{tail}: every method paid for forgetting "
                     "with retained knowledge.")

    for n in labels:
        if util[n] is not None and util[n] < UTILITY_COLLAPSED:
            why = (" — the known gradient-ascent collapse: ascending the forget loss without bound destroys "
                   "the retained knowledge as well" if _is_grad_ascent(report, n) else "")
            lines.append(f"{n} collapsed: utility {fmt(util[n])} (KnowMem on the retain set "
                         f"{fmt(kr[n])} vs target {fmt(finite(target.get('knowmem_retain')))}){why}.")

    fq = metric("forget_quality")
    if any(k in models[n] for n in labels for k in catalog.TOFU_NAMES):
        lines.append(_winner(fq, "forget_quality", "TOFU forget quality", lambda best: (
            f"{best} has the highest TOFU forget quality{_ties(fq, best)}: {fq[best]:.3g} (KS-test p-value against "
            f"the retrain model's truth ratios; target {fmt(finite(target.get('forget_quality')))}), "
            f"truth ratio on the forget set {fmt(finite(models[best].get('truth_ratio_forget')))}.")))

    lines += _span_lines(report, labels)
    lines += _trend_lines(report, "scalability", "forget_size",
                          lambda r: f"{r['forget_size']} forget people", "Scalability")
    lines += _trend_lines(report, "sustainability", "request",
                          lambda r: f"request {r['request']} ({r.get('forgotten', 'n/a')} people forgotten)",
                          "Sustainability")
    return lines


def _span_lines(report: Mapping[str, Any], labels: Sequence[str]) -> list[str]:
    """For each span-scoped method: the text around the forgotten values (ppl_forget_context) against the target's
    and the whole-document methods'."""
    models, methods = report["models"], report.get("methods") or {}
    spans = [n for n in labels if ((methods.get(n) or {}).get("hparams") or {}).get("scope") == "spans"]
    others = ", ".join(f"{n} {fmt(finite(models[n].get('ppl_forget_context')))}" for n in labels if n not in spans)
    target = fmt(finite(models.get("target", {}).get("ppl_forget_context")))
    return [f"{n} unlearned the facts' values alone: the text around them has perplexity "
            f"{fmt(finite(models[n].get('ppl_forget_context')))} (target {target}; on whole documents: {others}), "
            f"KnowMem on the forget set {fmt(finite(models[n].get('knowmem_forget')))}." for n in spans]


def rows_by_method(rows: Sequence[Mapping[str, Any]], axis: str) -> dict[str, list[Mapping[str, Any]]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["method"], []).append(row)
    return {m: sorted(g, key=lambda r: r[axis]) for m, g in groups.items()}


def _trend_lines(report: Mapping[str, Any], section: str, axis: str, where, name: str) -> list[str]:
    """Per method: utility (and KnowMem forget) at the first point of `axis` vs at the last."""
    target = report["models"].get("target", {})
    lines = []
    for method, rows in rows_by_method(report.get(section) or [], axis).items():
        first, last = rows[0], rows[-1]
        u0, u1 = utility(first, target), utility(last, target)
        k0, k1 = finite(first.get("knowmem_forget")), finite(last.get("knowmem_forget"))
        if len(rows) == 1:
            lines.append(f"{name} — {method}: only {where(first)} was measured: utility {fmt(u0)}, "
                         f"KnowMem forget {fmt(k0)}.")
            continue
        change = "n/a" if u0 is None or u1 is None else f"{u1 - u0:+.3f}"
        verdict = ("" if u0 is None or u1 is None else
                   "; it holds up" if u1 >= u0 - 0.05 else "; it degrades")
        lines.append(f"{name} — {method}: utility {fmt(u0)} at {where(first)} → {fmt(u1)} at {where(last)} "
                     f"(change {change}); KnowMem forget {fmt(k0)} → {fmt(k1)}{verdict}.")
    return lines


# ----------------------------------------------------------------------------------------------- markdown

def _hparams(h: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={f'{v:.3g}' if isinstance(v, float) else v}" for k, v in h.items()) or "—"


def models_table(report: Mapping[str, Any]) -> str:
    """One row per model (target, retrain, then each method); efficacy, utility and every metric as columns."""
    models, keys = report["models"], metric_keys(report)
    target = models.get("target", {})
    rows = [[n, forget_efficacy(models[n], target), utility(models[n], target),
             *(finite(models[n].get(k)) for k in keys)] for n in model_order(report)]
    return markdown_table(["model", "forget efficacy", "utility", *keys], rows)


def _trend_table(report: Mapping[str, Any], section: str, axis_cols: Sequence[str]) -> str:
    target = report["models"].get("target", {})
    keys = ("knowmem_forget", "knowmem_retain", "verbmem_forget", "privleak")
    rows = [[r["method"], *(r.get(c) for c in axis_cols), forget_efficacy(r, _subset_target(r, target)),
             utility(r, target), *(finite(r.get(k)) for k in keys)]
            for rows in rows_by_method(report[section], axis_cols[0]).values() for r in rows]
    return markdown_table(["method", *axis_cols, "forget efficacy", "utility", *keys], rows)


def _subset_target(point: Mapping[str, Any], target: Mapping[str, Any]) -> Mapping[str, Any]:
    """The target as a scalability / sustainability point compares with it: KnowMem on the point's own forget
    subset (recorded beside the point; a report without it falls back to the whole set's)."""
    return {**target, "knowmem_forget": point.get("target_knowmem_forget", target.get("knowmem_forget"))}


def target_knowmem_by_point(rows: Sequence[Mapping[str, Any]], axis: str,
                            target: Mapping[str, Any]) -> dict[Any, Optional[float]]:
    """The target's KnowMem forget at each point of a trend (x -> value), on that point's own forget people, as
    the table compares: every method at one x forgets the same people. A point without it: the whole set's."""
    recorded = {r[axis]: finite(r["target_knowmem_forget"]) for r in rows if r.get("target_knowmem_forget") is not None}
    return {r[axis]: recorded.get(r[axis], finite(target.get("knowmem_forget"))) for r in rows}


def plot_names(report: Mapping[str, Any]) -> list[str]:
    """The PNG files plots.unlearning_plots writes for this report (and render_unlearning_markdown links)."""
    names = ["efficacy_utility.png"]
    names += [f"{s}.png" for s in ("scalability", "sustainability") if report.get(s)]
    names += ["robustness.png"] if any(m.get("attacks") for m in report.get("models", {}).values()) else []
    return names + ["unlearning.png"]


def render_unlearning_markdown(report: Mapping[str, Any], sections: Sequence[str] = ()) -> str:
    """report.md; `sections`: lines of further sections (robustness.py's), placed before the plots."""
    data = report.get("data", {})
    summary = ", ".join(f"{k} {v}" for k, v in data.items() if k != "source" and not isinstance(v, (dict, list)))
    parts = [
        f"# {report['scenario']} — unlearning report", "",
        f"Seed {report.get('seed')}; data: {data.get('source', 'n/a')}" + (f" ({summary})" if summary else "")
        + f"; methods: {', '.join(method_labels(report)) or 'none'}.", "",
        f"Forget efficacy = 1 − KnowMem_forget / target's; utility = KnowMem_retain / target's "
        f"(kept at >= {UTILITY_KEPT}, collapsed below {UTILITY_COLLAPSED}). PrivLeak closest to 0 is best.", "",
        "## Findings", "", *(f"- {line}" for line in findings(report)), "",
        "## Models", "", models_table(report), "",
    ]
    methods = report.get("methods") or {}
    if methods:
        parts += ["## Methods", "",
                  markdown_table(["label", "method", "hyperparameters", "seconds", "final loss"],
                                 [[label, m.get("method"), _hparams(m.get("hparams") or {}), finite(m.get("seconds")),
                                   finite(m.get("final_loss"))] for label, m in methods.items()]), ""]
    if report.get("scalability"):
        parts += ["## Scalability (growing forget set)", "",
                  _trend_table(report, "scalability", ("forget_size",)), ""]
    if report.get("sustainability"):
        parts += ["## Sustainability (successive deletion requests)", "",
                  _trend_table(report, "sustainability", ("request", "forgotten")), ""]
    parts += list(sections)
    parts += speculative_markdown(report.get("speculative"))
    parts += ["## Plots", ""]
    for name in plot_names(report):
        parts += [f"![{name[:-4]}]({name})", ""]
    parts += ["## Timings (s)", "", markdown_table(["stage", "seconds"], list((report.get("timings_s") or {}).items())),
              "", "## Versions", "",
              markdown_table(["package", "version"], list((report.get("versions") or {}).items())), ""]
    return "\n".join(parts)
