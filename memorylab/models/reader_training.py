"""The reader stage: a reader head (models/reader_head.py) trained on the generator's frozen states.

Examples are data/reader.py's: /chat prompts about people outside the world, each labelled with the tokens of
its answer inside the memory that states it, or with abstention. The generator only gives features (no
gradient reaches it), so the stage costs a forward of the generator and a forward and backward of the small
head per example; its folder holds the generator's files unchanged beside the head, so it loads wherever a
checkpoint does. The head is measured on examples drawn with another seed, per case, and the figures are kept in
its record (reader_head.json) and returned.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from memorylab.data.seeding import derive_seed, rng_for
from memorylab.models.reader_head import (HEAD_CONFIG, MEMORY, HeadShape, Layout, Reader, ReaderHead, batch_tensors,
                                          head_features, layout, memory_part)

VALIDATION_EXAMPLES = 400


def labelled(tokenizer: Any, example: Any, start_id: int) -> Optional[tuple[Layout, int, int, int]]:
    """(layout, abstain, first, last): the example's prompt as the head sees it and its label; None when the
    answer's characters do not fall on word edges (the copy would not be exact; it never happens with
    byte-level BPE, whose pieces never straddle a word and its punctuation, and values of whole words)."""
    prompt = example.prompt
    end = memory_part(prompt)
    if end is None:
        return None
    x = layout(tokenizer, prompt, start_id, end)
    if not example.evidence:
        return x, 1, -100, -100
    line_at = ("\n" + prompt).index("\n" + example.evidence + "\n")
    first_char = line_at + example.evidence.index(example.answer)
    last_char = first_char + len(example.answer)
    inside = [k for k, (a, b) in enumerate(x.offsets) if x.regions[k] == MEMORY and a < last_char and b > first_char]
    if not inside or prompt[x.offsets[inside[0]][0]:x.offsets[inside[-1]][1]].strip() != example.answer:
        return None
    if not (x.edges[inside[0]] & 1 and x.edges[inside[-1]] & 2):  # not whole words: the head could not pick it
        return None
    return x, 0, inside[0], inside[-1]


def train_head(generator: str, out_dir: str, examples: Sequence[Any], validation: Sequence[Any], *, steps: int,
               batch_size: int, lr: float, shape: dict[str, Any], seed: int, threads: int, device: str,
               calibration: Sequence[Any] = (), settings: Optional[dict[str, Any]] = None,
               desc: str = "train reader") -> dict[str, Any]:
    """Train a reader head on `examples` (data/reader.py ReaderExamples) over the generator at `generator`, set
    its abstention threshold on `calibration` (0.5 without), measure it on `validation`, and write the
    generator's files with the head into `out_dir`. Returns the training record, which keeps `settings` (what a
    later start compares to reuse the head)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memorylab.progress import progress_bar

    torch.set_num_threads(threads)
    torch.manual_seed(derive_seed(seed, "reader", "head"))
    dev = torch.device(device)
    started = time.monotonic()
    tokenizer = AutoTokenizer.from_pretrained(generator)
    model = AutoModelForCausalLM.from_pretrained(generator).to(dev).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start_id
    head_shape = HeadShape(feature_size=model.config.hidden_size,
                           max_positions=int(model.config.max_position_embeddings), **shape)
    rows = [r for r in (labelled(tokenizer, e, start_id) for e in examples) if r is not None]
    rows = [r for r in rows if len(r[0].ids) <= head_shape.max_positions]
    if not rows:
        raise ValueError("reader: no example fits the generator's context")
    features = generator_features(model, [x for x, *_ in rows], pad_id, dev)
    head = ReaderHead(head_shape).to(dev).train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (steps - s) / max(1, steps - warmup)))
    order_rng = rng_for(seed, "reader", "order")
    batches: list[list[int]] = []
    losses = []
    with progress_bar(steps, desc) as bar:
        for step in range(steps):
            if not batches:
                batches = length_buckets([len(x.ids) for x, *_ in rows], batch_size, order_rng)
            picked = batches.pop()
            loss = _loss(head, [rows[i] for i in picked], [features[i] for i in picked], pad_id, dev)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(round(loss.item(), 4))
            bar.update(1, loss=losses[-1])
    head.eval()
    reader = Reader(head, model, tokenizer, start_id, pad_id, dev)
    if calibration:
        head.shape = replace(head.shape, abstain_threshold=abstain_threshold(reader, calibration))
    figures = measure(reader, validation)
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(generator, out)
    (out / "train_log.json").unlink(missing_ok=True)
    record = {"settings": settings or {}, "generator": str(generator), "steps": steps, "batch_size": batch_size,
              "lr": lr, "seed": seed, "threads": threads, "examples": len(rows), "skipped": len(examples) - len(rows),
              "seconds": round(time.monotonic() - started, 1), "final_loss": losses[-1] if losses else None,
              "losses": losses[::max(1, steps // 100)], "abstain_threshold": head.shape.abstain_threshold,
              "validation": figures}
    head.save(out, record)
    return {"path": str(out), **record}


def length_buckets(lengths: list[int], batch_size: int, rng: Any, pool: int = 64) -> list[list[int]]:
    """One epoch's batches, each of similar lengths (little padding: about a third less work than random
    batches here): the examples shuffled, sorted by length within pools of `pool` batches, cut into batches,
    and the batches shuffled."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches = []
    for at in range(0, len(order), pool * batch_size):
        chunk = sorted(order[at:at + pool * batch_size], key=lambda i: lengths[i])
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@torch.inference_mode()
def generator_features(model: Any, layouts: list[Layout], pad_id: int, dev: torch.device,
                       batch_size: int = 64) -> list[torch.Tensor]:
    """Each layout's generator features (T, 2 x hidden), computed once: the generator is frozen, so every epoch
    over the examples would compute the same ones again. Kept in float16 (half the memory; the head reads them
    back in float32)."""
    from memorylab.progress import progress_bar

    out: list[torch.Tensor] = [torch.empty(0)] * len(layouts)
    order = sorted(range(len(layouts)), key=lambda i: len(layouts[i].ids))
    with progress_bar(len(order), "reader features") as bar:
        for at in range(0, len(order), batch_size):
            chunk = order[at:at + batch_size]
            tensors = batch_tensors([layouts[i] for i in chunk], pad_id, dev)
            states = head_features(model, tensors["ids"], tensors["mask"]).half()
            for row, i in enumerate(chunk):
                out[i] = states[row, :len(layouts[i].ids)].clone()
            bar.update(len(chunk))
    return out


def _loss(head: ReaderHead, batch: list, features: list[torch.Tensor], pad_id: int, dev: torch.device) -> torch.Tensor:
    tensors = batch_tensors([x for x, *_ in batch], pad_id, dev)
    width = tensors["ids"].shape[1]
    padded = torch.zeros((len(features), width, features[0].shape[1]), device=dev)
    for row, f in enumerate(features):  # float16 -> float32 in the copy
        padded[row, :f.shape[0]] = f
    start, end, gate = head(padded, tensors)
    abstain = torch.tensor([a for _, a, _, _ in batch], device=dev)
    first = torch.tensor([f for *_, f, _ in batch], device=dev)
    last = torch.tensor([e for *_, e in batch], device=dev)
    loss = F.cross_entropy(gate, abstain)
    if bool((abstain == 0).any()):
        copy = abstain == 0
        loss = loss + F.cross_entropy(start[copy], first[copy]) + F.cross_entropy(end[copy], last[copy])
    return loss


def abstain_threshold(reader: Reader, examples: Sequence[Any]) -> float:
    """The gate's threshold that answers the most `examples` exactly (an abstention example is right when the
    gate abstains, any other when it does not and the best span is the answer); of equal ones, the nearest 0.5."""
    scored = reader.scored([e.prompt for e in examples])
    cases = []  # (probability of abstaining, should abstain, the span is the answer)
    for e, got in zip(examples, scored):
        if got is not None:
            span, p = got
            right = span is not None and reader.tokenizer.decode(span, skip_special_tokens=True).strip() == e.answer
            cases.append((p, not e.evidence, right))
    if not cases:
        return 0.5
    def exact(threshold: float) -> int:
        return sum((p > threshold) if abstain else (p <= threshold and right) for p, abstain, right in cases)
    candidates = sorted({round(p, 4) for p, _, _ in cases} | {0.5})
    return max(candidates, key=lambda t: (exact(t), -abs(t - 0.5)))


def measure(reader: Reader, examples: Sequence[Any]) -> dict[str, Any]:
    """Exact match of the reader's answers, per case and overall."""
    answers = reader.read([e.prompt for e in examples])
    texts = reader.tokenizer.batch_decode([a or [] for a in answers], skip_special_tokens=True)
    by_case: dict[str, list[bool]] = {}
    for e, text in zip(examples, texts):
        by_case.setdefault(e.case, []).append(text.strip() == e.answer)
    out: dict[str, Any] = {case: round(sum(v) / len(v), 4) for case, v in sorted(by_case.items())}
    every = [hit for v in by_case.values() for hit in v]
    out["overall"] = round(sum(every) / max(1, len(every)), 4)
    out["examples"] = len(every)
    return out


def saved_record(folder: Path) -> Optional[dict[str, Any]]:
    path = folder / HEAD_CONFIG
    return json.loads(path.read_text()) if path.is_file() else None
