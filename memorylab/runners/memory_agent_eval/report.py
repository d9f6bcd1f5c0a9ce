"""The agent-eval report: report.md (tables, findings in words) and PNG charts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from memorylab.report import bar_chart, fmt, markdown_table

RETRIEVAL_COLUMNS = ("probes", "recall@5", "recall@10", "answer_in_context", "stale_in_context")
ANSWER_COLUMNS = ("probes", "exact_match", "f1", "answer_in_context", "abstention", "stale_answer", "context_tokens",
                  "judge_lenient", "judge_strict")


LOCOMO_ANSWERS_NOTE = (
    "With the embedded default these answers come from a tiny generator (a few million parameters) trained to "
    "read short fact memories about made-up people (agent_eval measures how well it does), never on dialogue: "
    "LoCoMo asks about conversations, in the words "
    "of their speakers, and the evidence turns rarely fit its prompt budget whole. Low exact match and F1 here "
    "measure that gap, not retrieval (see recall above); `generator: {source: openai, ...}` answers with a real "
    "model.")


def figures_table(groups: dict[str, dict[str, float]], columns=RETRIEVAL_COLUMNS) -> str:
    """One row per group; a column no group has is left out (an answer-less run has no exact_match)."""
    shown = [c for c in columns if any(c in g for g in groups.values())]
    return markdown_table(["group", *shown], [[name, *(g.get(c) for c in shown)] for name, g in groups.items()])


def answer_findings(report: dict[str, Any]) -> list[str]:
    """Sentences on the answers: what the agent was told, what it knew, what it was never told."""
    groups = report.get("competencies", {})
    lines = []
    told = [(name, g["exact_match"]) for name, g in groups.items()
            if name in ("accurate_retrieval", "test_time_learning", "conflict_resolution", "knowledge_update_known")
            and "exact_match" in g]
    if told:
        lines.append("Exact match on what the agent was told: " + ", ".join(f"{n} {fmt(v)}" for n, v in told) + ".")
    conflict = groups.get("conflict_resolution", {})
    if "stale_answer" in conflict:
        lines.append(f"Changed facts: the new value answered for {fmt(conflict.get('exact_match'))} of the probes, "
                     f"the replaced one for {fmt(conflict['stale_answer'])}.")
    update = groups.get("knowledge_update_known", {})
    if "stale_answer" in update:
        lines.append(f"Facts told about people the generator knows: the told value won for "
                     f"{fmt(update.get('exact_match'))} of the probes, the trained one for {fmt(update['stale_answer'])}.")
    if "exact_match" in groups.get("known", {}):
        lines.append(f"Known people asked from the weights: exact match {fmt(groups['known']['exact_match'])}.")
    if "abstention" in groups.get("never_told", {}):
        lines.append(f"People nobody mentioned: the agent answered {report.get('abstain', 'unknown')!r} for "
                     f"{fmt(groups['never_told']['abstention'])} of the questions.")
    return lines


def retriever_findings(retrievers: dict[str, dict[str, Any]]) -> list[str]:
    """Sentences on what fusion and each reranker did to recall@10 overall."""
    lines = []
    r10 = {name: r["recall@10"] for name, r in retrievers.items()}
    if {"dense", "bm25", "hybrid"} <= set(r10):
        beats = r10["hybrid"] > max(r10["dense"], r10["bm25"])
        lines.append(f"Hybrid (RRF) recall@10 {fmt(r10['hybrid'])} vs dense {fmt(r10['dense'])} and BM25 "
                     f"{fmt(r10['bm25'])}: hybrid {'beats both' if beats else 'does NOT beat both'} single retrievers.")
    for name, result in retrievers.items():
        if name.startswith("hybrid+") and "hybrid" in retrievers:
            base = retrievers["hybrid"]
            deltas = {k: result[k] - base[k] for k in ("recall@5", "recall@10")}
            total = sum(deltas.values())
            verdict = "helped" if total > 0.005 else "hurt" if total < -0.005 else "made no difference"
            lines.append(f"Reranker {name.split('+', 1)[1]} {verdict}: " + ", ".join(
                f"{k} {fmt(result[k])} vs hybrid {fmt(base[k])} ({deltas[k]:+.3f})" for k in deltas) + ".")
    return lines


def agent_findings(report: dict[str, Any]) -> list[str]:
    lines = []
    overall = report.get("competencies", {}).get("overall")
    if overall:
        lines.append(f"Over {overall['probes']} probes with evidence: recall@10 {fmt(overall.get('recall@10'))}, "
                     f"answer in context {fmt(overall.get('answer_in_context'))}.")
    conflict = report.get("competencies", {}).get("conflict_resolution")
    if conflict and "stale_in_context" in conflict:
        lines.append(f"Conflicts: the new value was in context for {fmt(conflict.get('answer_in_context'))} of the "
                     f"changed facts, the replaced value for {fmt(conflict['stale_in_context'])}.")
    adaptive = report.get("adaptive") or {}
    if adaptive.get("retrieve_rate_new") is not None and adaptive.get("retrieve_rate_known") is not None:
        ok = adaptive["retrieve_rate_new"] > adaptive["retrieve_rate_known"]
        lines.append(f"Adaptive retrieval ({adaptive.get('policy')}) retrieved for {fmt(adaptive['retrieve_rate_new'])} "
                     f"of questions about new people and {fmt(adaptive['retrieve_rate_known'])} about known ones: "
                     f"{'it tells them apart' if ok else 'it does NOT tell them apart'}.")
    return lines


def render(report: dict[str, Any], out_dir: Path) -> str:
    parts = [f"# {report['name']} (memory_agent_eval)", "", report.get("description", ""), ""]
    findings = agent_findings(report) + answer_findings(report) + retriever_findings(report.get("retrievers", {}))
    if findings:
        parts += ["## Findings", ""] + [f"- {line}" for line in findings] + [""]
    if report.get("competencies"):
        groups = report["competencies"]
        parts += ["## Served agent, per competency", "", "Retrieval (over /search):", "", figures_table(groups), ""]
        if any("exact_match" in g for g in groups.values()):
            parts += ["Answers (over /chat; exact match and F1 by LoCoMo's normalisation, abstention: the share "
                      f"answered {report.get('abstain', 'unknown')!r}, context_tokens: the prompt's tokens):", "",
                      figures_table(groups, ANSWER_COLUMNS), ""]
            bar_chart({k: v for k, v in groups.items() if "exact_match" in v}, [["exact_match", "f1", "abstention"]],
                      out_dir / "answers.png", "Served agent: answers per competency")
            parts += ["![answers](answers.png)", ""]
        if report.get("judge"):
            judge = report["judge"]
            parts += [f"Judge: {judge['model']} at {judge['base_url']}, prompts {', '.join(judge['prompts'].values())}"
                      f"; failed on {judge['failures']} answers.", ""]
        if report.get("categories"):
            parts += ["### Per dataset category", "", figures_table(report["categories"]), "",
                      figures_table(report["categories"], ANSWER_COLUMNS), ""]
        stats = report.get("store", {})
        parts += [f"Memories stored: {stats.get('memories')} from {stats.get('turns')} turns.", ""]
        lat = report.get("latency_ms", {})
        parts += ["### Latency (ms, over HTTP)", "",
                  markdown_table(["call", "p50", "p95", "calls"],
                                 [[k, v["p50"], v["p95"], v["calls"]] for k, v in lat.items()]), ""]
        bar_chart({k: v for k, v in report["competencies"].items()}, [["recall@10", "answer_in_context", "f1"]],
                  out_dir / "competencies.png", "Served agent: figures per competency")
        parts += ["![competencies](competencies.png)", ""]
    if report.get("retrievers"):
        rows = [[name, r["recall@5"], r["recall@10"], r["questions"]] for name, r in report["retrievers"].items()]
        parts += ["## Retrievers (in-process, same data)", "",
                  markdown_table(["retriever", "recall@5", "recall@10", "questions"], rows), ""]
        categories = sorted({c for r in report["retrievers"].values() for c in r.get("by_category", {})})
        if categories:
            rows = [[name, *(r["by_category"].get(c, {}).get("recall@10") for c in categories)]
                    for name, r in report["retrievers"].items()]
            parts += ["recall@10 per category:", "", markdown_table(["retriever", *categories], rows), ""]
        bar_chart({name: {"recall@5": r["recall@5"], "recall@10": r["recall@10"]}
                   for name, r in report["retrievers"].items()}, [["recall@5", "recall@10"]],
                  out_dir / "retrievers.png", "Evidence recall per retriever")
        parts += ["![retrievers](retrievers.png)", ""]
        if report.get("answers"):
            answers = report["answers"]
            parts += [f"### Answers from the hybrid top {answers['top_k']} (in-process, the agent's generator)", "",
                      figures_table(answers["by_category"], ANSWER_COLUMNS), "", LOCOMO_ANSWERS_NOTE, ""]
        if report.get("skipped_rerankers"):
            parts += [f"Not run here: {', '.join(f'{k} ({v})' for k, v in report['skipped_rerankers'].items())}.", ""]
    parts += [f"Seed {report['seed']}; versions: " + ", ".join(f"{k} {v}" for k, v in report["versions"].items()), ""]
    return "\n".join(parts)
