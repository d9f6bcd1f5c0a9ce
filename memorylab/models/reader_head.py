"""The reader head: how a small generator answers from the memories /chat puts before a question.

A 4-layer model trained for minutes does not learn to copy a value it has never seen, token by token, from its
context (measured: 300 to 1500 extra steps of reader examples left exact match on told facts at 0 to 0.7, and
cost the known people's answers). Extractive readers (SQuAD's) solve the same problem by pointing instead of
writing: this head reads the generator's own hidden states over the whole prompt, bidirectionally, and picks
either a span of one memory line (the answer, copied byte for byte, whatever the tokenizer made of it) or
abstention. The generator's weights are not touched, so what it knows from training stays exactly as known, and
a prompt without memories (adaptive retrieval chose not to retrieve) is answered by the generator as before.

A prompt is read when it has /chat's shape (data/prompts.py: memory_prompt): memory lines, a blank line, then
"Question: ...\\nAnswer:". Anything else (few-shot prompts, the policies' probes, infer: true prompts) is left
to the language model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from memorylab.models.byte_dropout import ByteDropout
from memorylab.models.name_links import asked_names_found, name_words, named_lines
from memorylab.models.prompt_regions import MEMORY, PAD, QUESTION, SEPARATOR

# Bumped when the head's weights change their meaning or names: a head saved by another version is retrained
# (serve/generator_model.py keeps it in the reader's settings) and refused by load() with one line.
HEAD_VERSION = 3
HEAD_FILE = "reader_head.safetensors"
HEAD_CONFIG = "reader_head.json"
QUESTION_MARK = "\n\nQuestion: "
ANSWER_END = "\nAnswer:"
MAX_IN_LINE = 64  # positions within a line the head tells apart (longer lines share the last one)


@dataclass(frozen=True)
class HeadShape:
    feature_size: int  # the generator's hidden size (the head reads its embeddings and its last layer)
    width: int = 128
    layers: int = 1  # global layers, after the one local layer
    heads: int = 4
    max_positions: int = 256
    max_span: int = 24  # tokens: the longest value copied
    dropout: float = 0.0
    abstain: str = "unknown"
    # The gate abstains above this probability of abstaining; set on held-out examples after training, as
    # SQuAD 2.0 readers set their no-answer threshold on a development set (models/reader_training.py).
    abstain_threshold: float = 0.5


@dataclass
class Layout:
    """One prompt as the head sees it: its tokens (start token first), each one's region, line and place in
    the line, whether a memory token's text is also one of the question's (DrQA's exact-match feature: what
    ties "Zoubai Kel" in a memory to the one asked about, however its pieces were learned), and each token's
    characters in the prompt (to copy an answer exactly)."""

    prompt: str
    ids: list[int]
    regions: list[int]
    lines: list[int]
    in_line: list[int]
    matches: list[int]
    edges: list[int]  # bit 1: a value may start at this token, bit 2: it may end here (word edges, see below)
    offsets: list[tuple[int, int]]
    names: list[int]  # the capitalised word a token is part of, numbered within the prompt (0: none; see below)


def memory_part(prompt: str) -> Optional[int]:
    """Where the memories of a /chat prompt end (the index of its blank line), or None when the prompt is not
    one: no memories, another format, or a "memory" line that is itself a QA line (a few-shot prompt)."""
    if not prompt.endswith(ANSWER_END):
        return None
    end = prompt.rfind(QUESTION_MARK)
    if end <= 0 or "\n" in prompt[end + len(QUESTION_MARK):-len(ANSWER_END)]:
        return None
    if any(line.startswith(("Question:", "Answer:")) for line in prompt[:end].split("\n")):
        return None
    return end


def layout(tokenizer: Any, prompt: str, start_id: int, memories_end: int) -> Layout:
    encoded = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = [start_id], [(0, 0)]
    regions, lines, in_line = [SEPARATOR], [-1], [0]
    line, line_start = 0, 1
    for token, (a, b) in zip(encoded["input_ids"], encoded["offset_mapping"]):
        text = prompt[a:b]
        if "\n" in text or a >= memories_end:
            region = SEPARATOR if "\n" in text else QUESTION
        else:
            region = MEMORY
        ids.append(token)
        offsets.append((a, b))
        regions.append(region)
        lines.append(line if region == MEMORY else -1)
        in_line.append(min(len(ids) - 1 - line_start, MAX_IN_LINE - 1) if region == MEMORY else 0)
        if "\n" in text:
            line, line_start = line + text.count("\n"), len(ids)
    asked = {prompt[a:b].strip().lower() for (a, b), r in zip(offsets, regions) if r == QUESTION} - {""}
    matches = [int(r == MEMORY and prompt[a:b].strip().lower() in asked) for (a, b), r in zip(offsets, regions)]
    return Layout(prompt, ids, regions, lines, in_line, matches, word_edges(prompt, offsets, lines), offsets,
                  name_words(prompt, offsets, regions))


def word_edges(prompt: str, offsets: list[tuple[int, int]], lines: list[int]) -> list[int]:
    """Where a copied value may start and end: at whole words, never inside one ("Weaver-Sand" of
    "Weaver-Sandoval"), as extractive readers pick spans of words, not of subword pieces. A value starts at a
    token that begins a word (after a space, its own or a lone space token's, or first in its line) and ends at
    one whose text ends in a letter or digit and is followed by neither (a space, punctuation, the line's end)."""
    edges = []
    for k, ((a, b), line) in enumerate(zip(offsets, lines)):
        if line < 0 or a == b:
            edges.append(0)
            continue
        text = prompt[a:b]
        first_in_line = k == 0 or lines[k - 1] != line
        last_in_line = k + 1 == len(lines) or lines[k + 1] != line
        next_char = "" if last_in_line else prompt[offsets[k + 1][0]:offsets[k + 1][0] + 1]
        after_space = text[:1].isspace() or prompt[offsets[k - 1][0]:offsets[k - 1][1]][-1:].isspace()
        starts = text.lstrip()[:1].isalnum() and (first_in_line or after_space)
        # A hyphenated value ("Weaver-Sandoval") is one word: it does not end before its hyphen.
        ends = text[-1:].isalnum() and not (next_char.isalnum() or next_char == "-")
        edges.append(int(starts) | 2 * int(ends))
    return edges


class ReaderHead(nn.Module):
    """A small bidirectional encoder over the generator's states, and three outputs: each memory token's score
    as the answer's first and last token, and copy-or-abstain for the whole prompt (read at its last token).

    Its first layer is local: a memory token attends only to its own line, so each token learns what its line
    says (whose fact, which attribute, marked "now" or "used to") before the global layers compare the lines
    with the question and with each other; there, tokens of one name attend to each other with a learned bonus
    (Layout.names). Before pointing, the question's state makes one memory-network hop over the memory tokens
    (End-to-End Memory Networks): what it reads there, such as the person a nickname stands for, joins the
    pointers' query. Measured on held-out reader examples (agent.yaml's generator, 10000 examples, 1600 steps,
    before data/reader.py framed facts and filled prompts):
    exact match 0.878 without the name bonus and the hop, 0.895 with the bonus, 0.903 with both (nicknames
    0.68 -> 0.72, abstention 0.85 -> 0.89); two hops, a second global layer or a local layer after the global
    one measured lower (0.885, 0.87, 0.83).

    The hop alone left a nickname's second step to the pointers, and they mostly missed it: on today's examples
    (8000, 1500 steps, held-out 400, head seeds 0 and 1) nicknames scored 0.47 / 0.42, the most common error.
    named_lines() makes that step explicit: every line that mentions a name the hop read scores higher as the
    answer's place (its gain starting at 1: from 0, one seed in two never found the path). The gate reads the
    pointers' sureness and how many of the question's names the memories have and lack (asked_names_found).
    Together: nicknames 0.87 / 0.88, abstention 0.73 / 0.57 -> 0.86 / 0.75, overall 0.785 / 0.71 -> 0.86 /
    0.81. Tried and dropped: end scores given the start (XLNet's head; cut values stayed as many, and some spans
    grew to whole lines), and other people's nicknames among the distractors (abstention fell)."""

    def __init__(self, shape: HeadShape) -> None:
        super().__init__()
        self.shape = shape
        # Each token's features and its predecessor's: the state that predicted a token says what kind of
        # value was expected there ("was born in" -> a place), which is what ties a value to a question.
        self.project = nn.Linear(4 * shape.feature_size, shape.width)
        self.position = nn.Embedding(shape.max_positions, shape.width)
        self.region = nn.Embedding(4, shape.width)
        self.in_line = nn.Embedding(MAX_IN_LINE, shape.width)
        self.matches = nn.Embedding(2, shape.width)
        self.encoder = nn.ModuleList(
            nn.TransformerEncoderLayer(shape.width, shape.heads, 2 * shape.width, dropout=shape.dropout,
                                       batch_first=True, norm_first=True) for _ in range(1 + shape.layers))
        for layer in self.encoder:
            # Dropout stays on the layers' inputs and outputs, not on the attention weights: drawing a mask for
            # every (head, token, token) took a quarter of a training step on CPU, for no measured gain. The
            # rest draws its masks eight to a random number (byte_dropout.py: a tenth of a step on one core).
            layer.self_attn.dropout = 0.0
            layer.dropout, layer.dropout1, layer.dropout2 = (ByteDropout(shape.dropout) for _ in range(3))
        self.norm = nn.LayerNorm(shape.width)
        self.drop = ByteDropout(shape.dropout)
        # Pointers: a token's score as the answer's first (last) token is its match with the question, read at
        # the prompt's last token (a bilinear form, as in pointer networks), plus a score of its own.
        self.start = nn.Linear(shape.width, 1)
        self.end = nn.Linear(shape.width, 1)
        self.start_query = nn.Linear(shape.width, shape.width)
        self.end_query = nn.Linear(shape.width, shape.width)
        self.gate = nn.Linear(shape.width, 2)  # 0: copy a span, 1: abstain
        # The gate also reads how sure the pointers are (log-sum-exp of the start and of the end scores), as SQuAD
        # 2.0 readers compare the best span's score with the no-answer score, and how many of the question's
        # capitalised words the memories mention (asked_names_found): a prompt where no token looks like the
        # answer's first or last, or that never names the person asked about, is one to abstain on.
        self.gate_reads = nn.Linear(4, 2)
        # A memory-network hop before pointing: the prompt's last state attends over the memory tokens and adds what
        # it read (say, whom a nickname names) to the query the pointers use.
        self.hop_query = nn.Linear(shape.width, shape.width)
        self.hop_value = nn.Linear(shape.width, shape.width)
        self.hop_norm = nn.LayerNorm(shape.width)
        # Per global layer and head, a learned bonus on attention between tokens of the same name (Layout.names).
        self.name_link = nn.Parameter(torch.zeros(shape.layers, shape.heads))
        # How much a line's names drew the hop's attention raises its tokens as the answer's first and last: the
        # second step of a nickname question (see named_lines). Starting at 1, not 0: from 0 the hop gets no
        # gradient through this path until the gain has grown, and one head seed in two never found it
        # (nicknames 0.43 where the other reached 0.80).
        self.line_gain = nn.Parameter(torch.ones(2))

    def forward(self, features: torch.Tensor, batch: dict[str, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(start scores, end scores, gate logits) for `features` and a batch_tensors() batch; a token where a
        value may not start (end) scores -inf as a start (end)."""
        regions, lines, lengths = batch["regions"], batch["lines"], batch["lengths"]
        t = features.shape[1]
        positions = torch.arange(t, device=features.device)
        x = (self.projected(features) + self.position(positions)[None] + self.region(regions)
             + self.in_line(batch["in_line"]) + self.matches(batch["matches"]))
        x = self.drop(x)
        padding = regions == PAD
        own_line = (lines[:, :, None] == lines[:, None, :]) | (lines[:, :, None] < 0)
        own_line = own_line | torch.eye(t, dtype=torch.bool, device=x.device)[None]
        local = torch.zeros(own_line.shape, device=x.device).masked_fill(~own_line | padding[:, None, :], float("-inf"))
        local = local.repeat_interleave(self.shape.heads, dim=0)
        names = batch["names"]
        same_name = ((names[:, :, None] == names[:, None, :]) & (names[:, :, None] > 0)).float()[:, None]
        blocked = torch.zeros(padding.shape, device=x.device).masked_fill(padding, float("-inf"))[:, None, None, :]
        for k, layer in enumerate(self.encoder):
            if k == 0:
                x = layer(x, src_mask=local, is_causal=False)
            else:  # (B, heads, T, T) -> (B x heads, T, T), as the layer's attention takes a per-head mask
                linked = self.name_link[k - 1][None, :, None, None] * same_name + blocked
                x = layer(x, src_mask=linked.flatten(0, 1), is_causal=False)
        x = self.norm(x)
        edges = batch["edges"]
        last = x[torch.arange(x.shape[0], device=x.device), lengths - 1]
        scale = self.shape.width ** -0.5
        read = torch.einsum("btd,bd->bt", x, self.hop_query(last)) * scale
        read = read.masked_fill(regions != MEMORY, float("-inf")).softmax(dim=-1)
        last = self.hop_norm(last + torch.einsum("bt,btd->bd", read, self.hop_value(x)))
        named = named_lines(read, names, lines)
        start = (self.start(x).squeeze(-1) + scale * torch.einsum("btd,bd->bt", x, self.start_query(last))
                 + self.line_gain[0] * named)
        end = (self.end(x).squeeze(-1) + scale * torch.einsum("btd,bd->bt", x, self.end_query(last))
               + self.line_gain[1] * named)
        start, end = start.masked_fill(edges & 1 == 0, float("-inf")), end.masked_fill(edges & 2 == 0, float("-inf"))
        # Clamped: a row with no allowed start (end) would make log-sum-exp -inf and its gradient NaN.
        sure = torch.stack([start.clamp(min=-1e4).logsumexp(dim=-1), end.clamp(min=-1e4).logsumexp(dim=-1)], dim=-1)
        reads = torch.cat([sure, asked_names_found(names, regions)], dim=-1)
        return start, end, self.gate(last) + self.gate_reads(reads)

    def projected(self, features: torch.Tensor) -> torch.Tensor:
        """project([each token's features, its predecessor's]), computed as one product with the features and
        its second half shifted by one token: the same function without building the (B, T, 4 x hidden)
        concatenation, the largest tensor of a step."""
        half = features.shape[-1]
        weight = self.project.weight
        both = F.linear(features, torch.cat([weight[:, :half], weight[:, half:]]))  # (B, T, 2 x width)
        own, of_next = both.split(self.shape.width, dim=-1)
        return own + F.pad(of_next[:, :-1], (0, 0, 1, 0)) + self.project.bias

    # -- files --------------------------------------------------------------------------------------------
    def save(self, folder: Path, record: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(folder / HEAD_FILE))
        (folder / HEAD_CONFIG).write_text(json.dumps({"version": HEAD_VERSION, "shape": asdict(self.shape), **record},
                                                     indent=1))

    @classmethod
    def load(cls, folder: Path, device: torch.device) -> "ReaderHead":
        from safetensors.torch import load_file

        config = json.loads((folder / HEAD_CONFIG).read_text())
        if config.get("version", 1) != HEAD_VERSION:
            raise ValueError(f"{folder / HEAD_CONFIG}: a reader head of version {config.get('version', 1)}, this "
                             f"memorylab reads version {HEAD_VERSION}; train the reader again (a served agent does "
                             f"so on its next start)")
        head = cls(HeadShape(**config["shape"]))
        head.load_state_dict(load_file(str(folder / HEAD_FILE)))
        return head.to(device).eval()


def has_reader_head(folder: str | Path) -> bool:
    return (Path(folder) / HEAD_CONFIG).is_file()


def head_features(model: Any, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """What the head reads of the generator: its input embeddings and its last layer's states, side by side
    (from the base model: the vocabulary logits are not needed)."""
    out = model.base_model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    return torch.cat([out.hidden_states[0], out.last_hidden_state], dim=-1).float()


def batch_tensors(layouts: Sequence[Layout], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, regions, in-line places, matches, word edges, lines, name words and
    lengths of a batch of layouts."""
    width = max(len(x.ids) for x in layouts)
    def padded(rows: list[list[int]], fill: int) -> torch.Tensor:
        return torch.tensor([r + [fill] * (width - len(r)) for r in rows], dtype=torch.long, device=device)
    return {"ids": padded([x.ids for x in layouts], pad_id),
            "mask": padded([[1] * len(x.ids) for x in layouts], 0),
            "regions": padded([x.regions for x in layouts], PAD),
            "in_line": padded([x.in_line for x in layouts], 0),
            "matches": padded([x.matches for x in layouts], 0),
            "edges": padded([x.edges for x in layouts], 0),
            "lines": padded([x.lines for x in layouts], -1),
            "names": padded([x.names for x in layouts], 0),
            "lengths": torch.tensor([len(x.ids) for x in layouts], device=device)}


def best_spans(start: torch.Tensor, end: torch.Tensor, lines: torch.Tensor, max_span: int) -> torch.Tensor:
    """(B, 2) first and last token of the best span of each row: the highest start + end score over spans of at
    most `max_span` tokens inside one memory line."""
    t = start.shape[1]
    i = torch.arange(t, device=start.device)
    allowed = (i[None, :] >= i[:, None]) & (i[None, :] < i[:, None] + max_span)  # (T, T): j in [i, i + max_span)
    same_line = (lines[:, :, None] == lines[:, None, :]) & (lines[:, :, None] >= 0)
    scores = (start[:, :, None] + end[:, None, :]).masked_fill(~(allowed[None] & same_line), float("-inf"))
    flat = scores.flatten(1).argmax(dim=1)
    return torch.stack([flat // t, flat % t], dim=1)


class Reader:
    """A generator's reader head, ready to answer /chat prompts: `read` gives each prompt's answer as token ids
    (the copied span's own tokens, or the abstention's), or None for a prompt it leaves to the generator."""

    def __init__(self, head: ReaderHead, model: Any, tokenizer: Any, start_id: int, pad_id: int,
                 device: torch.device) -> None:
        self.head, self.model, self.tokenizer = head, model, tokenizer
        self.start_id, self.pad_id, self.device = start_id, pad_id, device
        self.abstain_ids = tokenizer(" " + head.shape.abstain, add_special_tokens=False)["input_ids"]

    def read(self, prompts: Sequence[str], batch_size: int = 16) -> list[Optional[list[int]]]:
        out: list[Optional[list[int]]] = []
        for scored in self.scored(prompts, batch_size):
            if scored is None:
                out.append(None)
            else:
                span, abstain = scored
                copy = span is not None and abstain <= self.head.shape.abstain_threshold
                out.append(span if copy else list(self.abstain_ids))
        return out

    @torch.inference_mode()
    def scored(self, prompts: Sequence[str], batch_size: int = 16
               ) -> list[Optional[tuple[Optional[list[int]], float]]]:
        """Per prompt: None when it is not read, else (the best span's token ids, or None when no span of whole
        words exists; the gate's probability of abstaining)."""
        out: list[Optional[tuple[Optional[list[int]], float]]] = [None] * len(prompts)
        todo = [(i, layout(self.tokenizer, p, self.start_id, end)) for i, p in enumerate(prompts)
                if (end := memory_part(p)) is not None]
        todo = [(i, x) for i, x in todo if MEMORY in x.regions and len(x.ids) <= self.head.shape.max_positions]
        for at in range(0, len(todo), batch_size):
            chunk = todo[at:at + batch_size]
            tensors = batch_tensors([x for _, x in chunk], self.pad_id, self.device)
            features = head_features(self.model, tensors["ids"], tensors["mask"])
            start, end, gate = self.head(features, tensors)
            spans = best_spans(start, end, tensors["lines"], self.head.shape.max_span).tolist()
            abstain = gate.softmax(dim=1)[:, 1].tolist()
            for row, ((i, x), (a, b)) in enumerate(zip(chunk, spans)):
                whole = bool(torch.isfinite(start[row, a] + end[row, b]))  # False: no span of whole words at all
                out[i] = (x.ids[a:b + 1] if whole else None, abstain[row])
        return out
