"""Feed a dataset's sessions to a served agent turn by turn over HTTP, then ask its probes and score them.

Evidence is tracked through the agent's own replies: every memory id an add returns (ADD, UPDATE, and NOOP,
which names the memory that already holds the turn's content) is credited with that turn, so evidence
recall@k asks "did the top k memories include one written from each evidence turn?", however the policy
split, merged or rewrote the turns.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from typing import Any, Optional

import numpy as np

from memorylab.data.agent_sessions import COMPETENCIES, AgentDataset, Probe
from memorylab.metrics.rouge import rouge_l_f1
from memorylab.progress import progress_bar
from memorylab.serve.client import AgentClient

KS = (5, 10)
_NO_PUNCTUATION = str.maketrans("", "", string.punctuation)


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


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_NO_PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def score_probe(client: AgentClient, agent: str, probe: Probe, written: dict[str, set[str]], top_k: int,
                answer: bool, stale: Optional[str]) -> dict[str, Any]:
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
        gold = "; ".join(probe.answers)
        row.update(prediction=chat["answer"], retrieved=float(chat["retrieved"]),
                   exact_match=float(normalize_answer(chat["answer"]) == normalize_answer(gold)),
                   f1=rouge_l_f1(chat["answer"], gold))
    return row


def probe_all(client: AgentClient, agent: str, dataset: AgentDataset, written: dict[str, set[str]], top_k: int,
              answer: bool, progress: bool = True) -> list[dict[str, Any]]:
    rows = []
    with progress_bar(len(dataset.probes), f"probe {dataset.name}", enabled=progress) as bar:
        for i, probe in enumerate(dataset.probes):
            rows.append(score_probe(client, agent, probe, written, top_k, answer, dataset.stale_answers.get(i)))
            bar.update()
    return rows


FIGURES = ("recall@5", "recall@10", "answer_in_context", "exact_match", "f1", "stale_in_context")


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
            values = [r[figure] for r in members if figure in r]
            if values:
                figures[figure] = float(np.mean(values))
        out[name] = figures
    order = [c for c in COMPETENCIES if c in out] + sorted(k for k in out if k not in COMPETENCIES and k != "overall")
    return {k: out[k] for k in order + (["overall"] if "overall" in out else [])}


def adaptive_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often /chat retrieved, for probes about people the model knows vs people it only heard of."""
    known = [r["retrieved"] for r in rows if "retrieved" in r and r["competency"] == "known"]
    new = [r["retrieved"] for r in rows if "retrieved" in r and r["competency"] != "known"]
    return {"retrieve_rate_new": float(np.mean(new)) if new else None,
            "retrieve_rate_known": float(np.mean(known)) if known else None,
            "probes_new": len(new), "probes_known": len(known)}


def latency_figures(latencies_ms: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {kind: {"p50": float(np.percentile(v, 50)), "p95": float(np.percentile(v, 95)), "calls": len(v)}
            for kind, v in latencies_ms.items() if v}
