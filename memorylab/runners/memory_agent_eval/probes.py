"""Feed a dataset's sessions to a served agent turn by turn over HTTP, then ask its probes and score them.

Evidence is tracked through the agent's own replies: every memory id an add returns (ADD, UPDATE, and NOOP,
which names the memory that already holds the turn's content) is credited with that turn, so evidence
recall@k asks "did the top k memories include one written from each evidence turn?", however the policy
split, merged or rewrote the turns.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

import numpy as np

from memorylab.data.agent_sessions import COMPETENCIES, AgentDataset, Probe
from memorylab.metrics.answers import answer_scores, exact_match, normalize_answer, says_abstain
from memorylab.metrics.judge import Judge
from memorylab.progress import progress_bar
from memorylab.serve.client import AgentClient

KS = (5, 10)


def feed(client: AgentClient, agent: str, dataset: AgentDataset, progress: bool = True) -> dict[str, set[str]]:
    """Add every turn; returns memory id -> the turn ids it was written from."""
    written: dict[str, set[str]] = defaultdict(set)
    with progress_bar(len(dataset.turns), f"feed {dataset.name}", enabled=progress) as bar:
        for turn in dataset.turns:
            message: dict[str, Any] = {"role": turn.role, "content": turn.content}
            for result in client.add(agent, [message], metadata={"turn": turn.id}):
                if result["event"] != "DELETE":
                    written[result["id"]].add(turn.id)
            bar.update()
    return written


def score_probe(client: AgentClient, agent: str, probe: Probe, written: dict[str, set[str]], top_k: int,
                answer: bool, stale: Optional[str], abstain: str, judge: Optional[Judge] = None) -> dict[str, Any]:
    reply = client.search(agent, probe.question, top_k=top_k)
    ids = [hit["id"] for hit in reply["results"]]
    context = "\n".join(hit["memory"] for hit in reply["results"])
    row: dict[str, Any] = {"question": probe.question, "competency": probe.competency, "category": probe.category,
                           "answers": list(probe.answers), "evidence": list(probe.evidence)}
    if probe.evidence:
        for k in KS:
            found = set().union(*(written.get(i, set()) for i in ids[:k]))
            row[f"recall@{k}"] = len(found & set(probe.evidence)) / len(probe.evidence)
        row["answer_in_context"] = float(all(normalize_answer(a) in normalize_answer(context) for a in probe.answers))
    if stale is not None:
        # A conflict left unresolved: the replaced value is what the agent would read.
        row["stale_in_context"] = float(normalize_answer(stale) in normalize_answer(context))
    if answer:
        chat = client.chat(agent, probe.question)
        prediction = chat["answer"]
        row.update(prediction=prediction, retrieved=float(chat["retrieved"]),
                   context_tokens=float(chat.get("context_tokens", 0)),
                   abstention=float(says_abstain(prediction, abstain)),
                   **answer_scores(prediction, probe.answers, probe.category, abstain, probe.unanswerable))
        if stale is not None:
            row["stale_answer"] = exact_match(prediction, stale)  # the replaced value answered
        if judge is not None and not probe.unanswerable and probe.category != "adversarial":
            row.update(judge.grade(probe.question, "; ".join(probe.answers), prediction))
    return row


def probe_all(client: AgentClient, agent: str, dataset: AgentDataset, written: dict[str, set[str]], top_k: int,
              answer: bool, abstain: str, judge: Optional[Judge] = None, progress: bool = True) -> list[dict[str, Any]]:
    rows = []
    with progress_bar(len(dataset.probes), f"probe {dataset.name}", enabled=progress) as bar:
        for i, probe in enumerate(dataset.probes):
            rows.append(score_probe(client, agent, probe, written, top_k, answer, dataset.stale_answers.get(i),
                                    abstain, judge))
            bar.update()
    return rows


FIGURES = ("recall@5", "recall@10", "answer_in_context", "exact_match", "f1", "abstention", "context_tokens",
           "stale_in_context", "stale_answer", "judge_lenient", "judge_strict")


def summarize(rows: list[dict[str, Any]], key: str = "competency") -> dict[str, dict[str, float]]:
    """Mean of each figure per group (competency or category) and `overall` over evidence-bearing probes."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[row[key] or "untagged"].append(row)
        if row["evidence"]:
            groups["overall"].append(row)
    out = {}
    for name, members in groups.items():
        figures: dict[str, float] = {"probes": len(members)}
        for figure in FIGURES:
            values = [r[figure] for r in members if r.get(figure) is not None]
            if values:
                figures[figure] = float(np.mean(values))
        out[name] = figures
    order = [c for c in COMPETENCIES if c in out] + sorted(k for k in out if k not in COMPETENCIES and k != "overall")
    return {k: out[k] for k in order + (["overall"] if "overall" in out else [])}


def adaptive_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often /chat retrieved: for questions about people the model knows and nobody mentioned (it should
    not need to), about what the sessions told (it should), and about known people whose facts the sessions
    changed (it should: what it was told is newer than its weights)."""
    def rate(rows_of: list[dict[str, Any]]) -> Optional[float]:
        values = [r["retrieved"] for r in rows_of if "retrieved" in r]
        return float(np.mean(values)) if values else None

    known = [r for r in rows if r["competency"] == "known"]
    told = [r for r in rows if r["evidence"] and r["competency"] != "knowledge_update_known"]
    updated = [r for r in rows if r["competency"] == "knowledge_update_known"]
    return {"retrieve_rate_new": rate(told), "retrieve_rate_known": rate(known),
            "retrieve_rate_updated_known": rate(updated), "probes_new": len(told), "probes_known": len(known),
            "probes_updated_known": len(updated)}


def latency_figures(latencies_ms: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {kind: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "calls": len(v)}
            for kind, v in latencies_ms.items() if v}
