"""The continual report: per-arm figures from the measurement points, the retention section, the findings
(computed from the numbers, never assumed), report.md and the PNG plots.

Kept apart from the runner so that a report can be re-rendered from a report.json alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from memorylab.continual.probes import RETENTION_FIGURES, retention_summary
from memorylab.report import fmt, markdown_table, pyplot

# Forgetting (old KnowMem before - final) differences below this are within noise for a few dozen questions.
MEASURABLE = 0.05
CURVES = ("old_knowmem", "new_knowmem", "old_loss", "new_loss")
ARM_SETTINGS = ("replay", "max_lr", "warmup_steps", "min_lr")  # numeric; `schedule` is a word
ARM_FIGURES = ("old_knowmem_before", "old_knowmem_final", "new_knowmem_before", "new_knowmem_final", "forgetting",
               "adaptation", "old_loss_before", "old_loss_final", "new_loss_before", "new_loss_final")


def arm_figures(points: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Before (step 0) and final (the latest point) of each curve; forgetting = old KnowMem before - final."""
    first, last = points[0], points[-1]
    out = {f"{c}_{when}": p[c] for c in CURVES for when, p in (("before", first), ("final", last))}
    out["forgetting"] = first["old_knowmem"] - last["old_knowmem"]
    out["adaptation"] = last["new_knowmem"] - first["new_knowmem"]
    return {k: out[k] for k in ARM_FIGURES}


def arm_entry(arm: Any, result: Mapping[str, Any]) -> dict[str, Any]:
    points = result["points"]
    return {**{k: getattr(arm, k) for k in ARM_SETTINGS}, "schedule": arm.schedule, **arm_figures(points),
            "seconds": round(result["seconds"], 3),
            "curves": {"step": [p["step"] for p in points], **{c: [p[c] for p in points] for c in CURVES},
                       "lr": result["lrs"], "train_loss": result["losses"]}}


def retention_section(scenario: Any, results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    r = scenario.retention
    if r is None:
        return {}
    first = r.insert_at
    # Each group peaks right after its own last insertion (x1's is insert_at itself).
    last_of = {f"x{n}": r.insert_at + (n - 1) * r.spacing for n in r.repeats}
    arms: dict[str, Any] = {}
    for name, result in results.items():
        points = result["points"]
        steps = [p["step"] for p in points]
        arms[name] = {}
        for group in points[0]["probes"]:
            recognition = [p["probes"][group]["recognition"] for p in points]
            recall = [p["probes"][group]["recall"] for p in points]
            arms[name][group] = {**retention_summary(steps, recognition, recall, first, last_of[group]),
                                 "step": steps, "recognition": recognition, "recall": recall}
    return {"insert_at": r.insert_at, "spacing": r.spacing, "probes": r.probes, "repeats": list(r.repeats),
            "arms": arms}


def report_fields(scenario: Any) -> set[str]:
    """Dotted paths of the numbers (figures, not curves) the report holds for `scenario`."""
    fields = {f"arms.{a.name}.{k}" for a in scenario.arms for k in (*ARM_SETTINGS, *ARM_FIGURES, "seconds")}
    r = scenario.retention
    if r is not None:
        fields |= {f"retention.{k}" for k in ("insert_at", "spacing", "probes")}
        fields |= {f"retention.arms.{a.name}.x{n}.{k}" for a in scenario.arms for n in r.repeats
                   for k in RETENTION_FIGURES}
    return fields


# ----------------------------------------------------------------------------------------------- findings

def _replay_finding(arms: Mapping[str, Mapping[str, Any]]) -> tuple[Optional[bool], list[str]]:
    """Each arm with replay >= 0.25 against the no-replay arm of the same max_lr (and schedule if there is one)."""
    no_replay = [n for n, a in arms.items() if a["replay"] == 0]
    verdicts, lines = [], []
    for name, a in arms.items():
        if a["replay"] < 0.25:
            continue
        peers = [n for n in no_replay if arms[n]["max_lr"] == a["max_lr"]]
        peers = [n for n in peers if arms[n]["schedule"] == a["schedule"]] or peers
        if not peers:
            lines.append(f"{name} (replay {a['replay']:g}) has no no-replay arm at max_lr {a['max_lr']:g} "
                         "to compare with.")
            continue
        peer = arms[peers[0]]
        less = peer["forgetting"] - a["forgetting"]
        verdicts.append(less >= MEASURABLE)
        schedules = "" if peer["schedule"] == a["schedule"] else f"; schedule {a['schedule']} vs {peer['schedule']}"
        lines.append(f"{name} (replay {a['replay']:g}) forgets {fmt(a['forgetting'])} of old-fact KnowMem vs "
                     f"{fmt(peer['forgetting'])} for {peers[0]} (no replay, same max_lr and steps{schedules}): "
                     f"{fmt(less)} less — {'measurably less' if verdicts[-1] else 'NOT measurably less'} "
                     f"(threshold {MEASURABLE}).")
    return (all(verdicts) if verdicts else None), lines


def _rewarm_finding(arms: Mapping[str, Mapping[str, Any]]) -> tuple[Optional[bool], list[str]]:
    no_replay = [n for n, a in arms.items() if a["replay"] == 0]
    if not no_replay or len(arms) < 2:
        return None, ["There is no no-replay arm (or no other arm) to compare re-warming without replay against."]
    rewarm = max(no_replay, key=lambda n: arms[n]["max_lr"])  # the first of the highest max_lr
    most = max(arms, key=lambda n: arms[n]["forgetting"])
    forgot = arms[rewarm]["forgetting"]
    ok = forgot >= arms[most]["forgetting"] and forgot >= MEASURABLE  # the most, and something at all
    others = ", ".join(f"{n} {fmt(a['forgetting'])}" for n, a in arms.items() if n != rewarm)
    verdict = ("the most of all arms" if ok else f"NOT the most: {most} forgets more" if most != rewarm
               else f"the most, but less than {MEASURABLE}: nothing measurable was forgotten")
    return ok, [f"Re-warming to max_lr {arms[rewarm]['max_lr']:g} without replay ({rewarm}) forgets "
                f"{fmt(arms[rewarm]['forgetting'])}, {verdict} (others: {others})."]


def _retention_finding(retention: Mapping[str, Any]) -> tuple[Optional[bool], list[str]]:
    verdicts, lines = [], []
    for arm, groups in retention.get("arms", {}).items():
        for group, g in groups.items():
            rec, rcl = g["recognition_retained"], g["recall_retained"]
            where = f"{arm}, probes seen {group[1:]}x"
            if rec is None or rcl is None:
                lines.append(f"{where}: not measurable — recognition AUC peaked at {fmt(g['recognition_peak'])} and "
                             f"recall at {fmt(g['recall_peak'])} (from {fmt(g['recall_before'])} before insertion).")
                continue
            verdicts.append(rcl < rec)
            lines.append(f"{where}: recall kept {fmt(rcl)} of its rise ({fmt(g['recall_peak'])} → "
                         f"{fmt(g['recall_final'])}), recognition {fmt(rec)} of its rise over chance (AUC "
                         f"{fmt(g['recognition_peak'])} → {fmt(g['recognition_final'])}): recall "
                         f"{'falls faster' if verdicts[-1] else 'does NOT fall faster'}.")
    return (all(verdicts) if verdicts else None), lines


def findings(arms: Mapping[str, Mapping[str, Any]], retention: Mapping[str, Any]) -> dict[str, Any]:
    """The scenario's three claims as booleans (None: nothing to compare), each with its sentences."""
    replay, replay_lines = _replay_finding(arms)
    rewarm, rewarm_lines = _rewarm_finding(arms)
    recall, recall_lines = _retention_finding(retention) if retention else (None, ["No retention probes were run."])

    def head(claim: str, verdict: Optional[bool]) -> str:
        return f"{claim}: {'holds' if verdict else 'not measured' if verdict is None else 'DOES NOT HOLD'}."

    return {"replay_reduces_forgetting": replay, "rewarm_no_replay_forgets_most": rewarm,
            "recall_falls_faster_than_recognition": recall,
            "sentences": [head("Replay >= 0.25 forgets measurably less than no replay at the same compute", replay),
                          *replay_lines,
                          head("Re-warming without replay forgets the most", rewarm), *rewarm_lines,
                          head("Recall falls faster than recognition", recall), *recall_lines]}


# ----------------------------------------------------------------------------------------------- markdown

def render_markdown(report: Mapping[str, Any]) -> str:
    arms, retention, cfg = report["arms"], report["retention"], report["config"]
    c = cfg["continual"]
    parts = [f"# {report['scenario']} — continual pre-training report", "",
             f"Seed {report['seed']}. Every arm continues the same base model for {c['steps']} steps of "
             f"{c['batch_size']} rows (the same compute) on {report['data']['new_people']} new people written as "
             f"{cfg['new_data']['domain']}; replay rows replace new rows. Measured every {c['eval_every']} steps.", "",
             "## Findings", "", *[f"- {s}" for s in report["findings"]["sentences"]], "",
             "## Arms", "",
             markdown_table(["arm", "replay", "max_lr", "schedule", "warm-up", "old KnowMem before", "old final",
                             "forgetting", "new KnowMem before", "new final", "adaptation", "old loss final",
                             "new loss final"],
                            [[n, a["replay"], f"{a['max_lr']:g}", a["schedule"], a["warmup_steps"],
                              a["old_knowmem_before"], a["old_knowmem_final"], a["forgetting"],
                              a["new_knowmem_before"], a["new_knowmem_final"], a["adaptation"], a["old_loss_final"],
                              a["new_loss_final"]] for n, a in arms.items()]), "",
             "![curves](continual_curves.png)", "", "![LR schedules](lr_schedules.png)", ""]
    if retention:
        parts += ["## Retention probes", "",
                  f"{retention['probes']} probe facts per group, inserted from step {retention['insert_at']} "
                  f"(each group seen {', '.join(map(str, retention['repeats']))} times, {retention['spacing']} "
                  "step(s) apart); recognition = AUC of probes vs never-seen control facts (calibrated by each "
                  "text's log-prob at step 0; 0.5 is chance), recall = KnowMem on the probes' questions. "
                  "\"Retained\" = the fraction of the rise at the peak still there at the end.", "",
                  markdown_table(["arm", "probes", "recognition peak", "final", "retained", "recall before", "peak",
                                  "final", "retained"],
                                 [[n, g[1:] + "x", s["recognition_peak"], s["recognition_final"],
                                   s["recognition_retained"], s["recall_before"], s["recall_peak"],
                                   s["recall_final"], s["recall_retained"]]
                                  for n, groups in retention["arms"].items() for g, s in groups.items()]), "",
                  "![retention](retention.png)", ""]
    parts += ["## Timings (s)", "", markdown_table(["stage", "seconds"], list(report["timings_s"].items())), "",
              "## Versions", "", markdown_table(["package", "version"], list(report["versions"].items())), ""]
    return "\n".join(parts)


# ----------------------------------------------------------------------------------------------- plots

def plots(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    plt = pyplot()
    arms = report["arms"]
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        fig.tight_layout()
        written.append(out_dir / name)
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    titles = {"old_knowmem": "KnowMem, old facts (forgetting)", "new_knowmem": "KnowMem, new facts (adaptation)",
              "old_loss": "loss, old documents", "new_loss": "loss, new documents"}
    for ax, curve in zip(axes.flat, CURVES):
        for name, a in arms.items():
            ax.plot(a["curves"]["step"], a["curves"][curve], marker=".", label=name)
        ax.set_title(titles[curve])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    save(fig, "continual_curves.png")

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for i, (name, a) in enumerate(arms.items()):  # dash styles keep arms with one schedule apart
        ax.plot(range(len(a["curves"]["lr"])), a["curves"]["lr"], label=f"{name} ({a['schedule']})",
                linestyle=("-", "--", "-.", ":")[i % 4])
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save(fig, "lr_schedules.png")

    retention = report["retention"]
    if retention:
        groups = list(next(iter(retention["arms"].values())))
        fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.8), squeeze=False)
        for ax, group in zip(axes[0], groups):
            for i, (name, per_group) in enumerate(retention["arms"].items()):
                g, colour = per_group[group], f"C{i}"
                ax.plot(g["step"], g["recognition"], color=colour, marker=".", label=f"{name} recognition")
                ax.plot(g["step"], g["recall"], color=colour, linestyle="--", marker="x", label=f"{name} recall")
            ax.axvline(retention["insert_at"], color="grey", linestyle=":")
            ax.set_title(f"probes seen {group[1:]}x (from step {retention['insert_at']})")
            ax.set_xlabel("step")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        save(fig, "retention.png")
    return written
