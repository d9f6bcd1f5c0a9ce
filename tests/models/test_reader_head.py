"""The reader head: which prompts it reads, how it sees them, the spans it may pick, and a head trained on a tiny
generator, loaded with it and answering through the LM protocol (copied spans, abstention, the rest decoded)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from memorylab.data.prompts import fewshot_prompt, memory_prompt, qa_prompt
from memorylab.data.reader import reader_examples
from memorylab.models.reader_head import (MEMORY, QUESTION, SEPARATOR, HeadShape, ReaderHead, best_spans,
                                          has_reader_head, layout, memory_part)
from memorylab.models.reader_training import labelled, train_head

MEMORIES = ("Zoubai Kel was born in Brauvilleburg.", "We call Ada Park the tall fox.")
QUESTION_TEXT = "Where was Zoubai Kel born?"


def test_only_chat_prompts_with_memories_are_read():
    prompt = memory_prompt(MEMORIES, QUESTION_TEXT)
    assert memory_part(prompt) == prompt.index("\n\nQuestion: ")
    assert memory_part(qa_prompt(QUESTION_TEXT)) is None  # no memories: the generator answers
    assert memory_part(fewshot_prompt([("Who?", "Ann")], QUESTION_TEXT)) is None  # QA lines are not memories
    assert memory_part("Summarise: " + QUESTION_TEXT) is None


def test_the_layout_marks_lines_regions_and_what_the_question_shares(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = memory_prompt(MEMORIES, QUESTION_TEXT)
    x = layout(tokenizer, prompt, 0, memory_part(prompt))
    assert x.ids[0] == 0 and x.regions[0] == SEPARATOR  # the start token
    memory = [k for k, r in enumerate(x.regions) if r == MEMORY]
    assert {x.lines[k] for k in memory} == {0, 1}
    asked = [x.regions[k] for k, (a, _) in enumerate(x.offsets) if a >= prompt.index("Question")]
    assert set(asked) == {QUESTION, SEPARATOR} and asked.count(SEPARATOR) == 1  # the newline before "Answer:"
    first_line = "".join(prompt[a:b] for k, (a, b) in enumerate(x.offsets) if x.lines[k] == 0)
    assert first_line == MEMORIES[0]
    text = [prompt[a:b].strip().lower() for a, b in x.offsets]
    asked_texts = {text[k] for k, r in enumerate(x.regions) if r == QUESTION} - {""}
    assert all(x.matches[k] == (text[k] in asked_texts) for k in memory)
    assert sum(x.matches[k] for k in memory if x.lines[k] == 0) >= 3  # the name and "born" are asked about
    assert [x.matches[k] for k in memory if text[k] == "."] == [0, 0]  # the question ends with "?"
    assert x.in_line[memory[0]] == 0 and x.in_line[memory[1]] == 1
    # Values start and end at whole words: "Brauvilleburg" may be copied, none of its pieces alone.
    place = [k for k in memory if x.lines[k] == 0 and x.offsets[k][0] >= prompt.index("Brauvilleburg")][:-1]
    assert [x.edges[k] & 1 for k in place] == [1] + [0] * (len(place) - 1)
    assert [x.edges[k] & 2 for k in place] == [0] * (len(place) - 1) + [2]
    assert x.edges[memory[-1]] == 0  # the final "."


def test_tokens_of_one_name_share_a_number_across_lines_and_the_question(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    memories = ("Zoubai Kel works for Weaver-Sandoval.", "We call Zoubai Kel the tall fox.", "Ada Park is a nurse.")
    prompt = memory_prompt(memories, "Which company does the tall fox work for?")
    x = layout(tokenizer, prompt, 0, memory_part(prompt))
    def number_at(char: int) -> int:  # the name number of the token holding this character
        return next(x.names[k] for k, (a, b) in enumerate(x.offsets) if a <= char < b)

    lines_of: dict[int, set[int]] = {}
    for k, number in enumerate(x.names):
        if number:
            lines_of.setdefault(number, set()).add(x.lines[k])
    # "Zoubai" first in line 0 and after "call " in line 1 are different tokens, one name word.
    first, second = prompt.index("Zoubai"), prompt.index("Zoubai", prompt.index("We call"))
    assert number_at(first) == number_at(second) != 0 and lines_of[number_at(first)] == {0, 1}
    assert number_at(prompt.index("Sandoval")) == number_at(prompt.index("Weaver"))  # a hyphenated name is one
    assert sorted(len(lines) for lines in lines_of.values()).count(2) == 2  # Zoubai and Kel; nothing else twice
    lowercase = [k for k, (a, b) in enumerate(x.offsets) if prompt[a:b].strip() in ("works", "the", "fox", ".")]
    assert all(x.names[k] == 0 for k in lowercase)
    assert {x.names[k] for k, r in enumerate(x.regions) if r == SEPARATOR} == {0}


def test_spans_stay_inside_one_line_and_the_longest_allowed():
    start = torch.tensor([[0.0, 5.0, 0.0, -5.0, -5.0]])
    end = torch.tensor([[0.0, 0.0, 1.0, 0.0, 9.0]])
    lines = torch.tensor([[0, 0, 0, 1, 1]])
    assert best_spans(start, end, lines, max_span=8).tolist() == [[1, 2]]  # token 4 is on the next line
    assert best_spans(start, end, torch.tensor([[0, 0, 0, 0, 0]]), max_span=8).tolist() == [[1, 4]]
    assert best_spans(start, end, torch.tensor([[0, 0, 0, 0, 0]]), max_span=2).tolist() == [[1, 2]]


def test_every_label_copies_the_answer_exactly(tiny_model_dir, tiny_world):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for e in reader_examples(tiny_world, 300, people=60, seed=0):
        x, abstain, first, last = labelled(tokenizer, e, 0)
        if e.case == "abstain":
            assert abstain == 1
        else:
            assert prompt_text(x, first, last) == e.answer and x.lines[first] == x.lines[last] >= 0


def prompt_text(x, first: int, last: int) -> str:
    return x.prompt[x.offsets[first][0]:x.offsets[last][1]].strip()


@pytest.fixture(scope="module")
def trained_reader(tmp_path_factory, tiny_model_dir, tiny_world):
    out = tmp_path_factory.mktemp("reader") / "final"
    examples = reader_examples(tiny_world, 200, people=40, seed=0)
    validation = reader_examples(tiny_world, 40, people=20, seed=1)
    record = train_head(tiny_model_dir, str(out), examples, validation, steps=30, batch_size=16, lr=3e-3,
                        shape={"width": 32, "heads": 2, "abstain": "no idea"}, seed=0, threads=1, device="cpu",
                        calibration=reader_examples(tiny_world, 40, people=20, seed=2), settings={"steps": 30})
    return out, record, validation


def test_a_trained_head_is_saved_beside_the_generator_with_its_record(trained_reader, tiny_model_dir):
    out, record, _ = trained_reader
    assert has_reader_head(out) and (out / "model.safetensors").exists()
    assert record["steps"] == 30 and record["settings"] == {"steps": 30} and record["skipped"] == 0
    assert len(record["losses"]) == 30 and record["losses"][-1] < record["losses"][0]
    assert set(record["validation"]) >= {"copy", "abstain", "overall"}
    saved = json.loads((out / "reader_head.json").read_text())
    assert 0 < saved["shape"]["abstain_threshold"] == record["abstain_threshold"] < 1  # set on the calibration draw
    assert not has_reader_head(tiny_model_dir)


def test_a_head_of_another_version_is_refused_in_one_line(trained_reader, tmp_path):
    import shutil

    from memorylab.models.reader_head import HEAD_CONFIG, ReaderHead

    out, _, _ = trained_reader
    old = tmp_path / "old"
    shutil.copytree(out, old)
    config = json.loads((old / HEAD_CONFIG).read_text())
    del config["version"]  # as the first heads were saved
    (old / HEAD_CONFIG).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"reader_head.json: a reader head of version 1, .* version 3; train"):
        ReaderHead.load(old, torch.device("cpu"))
    assert ReaderHead.load(out, torch.device("cpu")).shape.width == 32  # this version loads


def test_the_loaded_generator_reads_memory_prompts_and_decodes_the_rest(trained_reader):
    from memorylab.models.backends.hf import HFLM
    from memorylab.models.protocol import GenerationParams

    out, _, validation = trained_reader
    lm = HFLM.load(str(out), device="cpu")
    assert lm.reader is not None
    prompts = [e.prompt for e in validation[:6]] + [qa_prompt(QUESTION_TEXT)]
    done = lm.complete(prompts, GenerationParams(max_new_tokens=6, stop=("\n",)), logprobs=2)
    for e, c in zip(validation[:6], done[:6]):
        answer = c.text.strip()
        assert answer == "no idea"[:len(answer)] or answer in e.prompt  # abstains or copies from the memories
        assert c.tokens and "".join(t.token for t in c.tokens) == c.text
    # The prompt without memories is decoded by the language model, exactly as without a head.
    lm.reader, reader = None, lm.reader
    alone = lm.complete([prompts[-1]], GenerationParams(max_new_tokens=6, stop=("\n",)))[0]
    lm.reader = reader
    assert done[-1].text == alone.text


def test_a_copied_answer_longer_than_max_tokens_is_cut_and_says_length(trained_reader):
    from memorylab.models.backends.hf import HFLM
    from memorylab.models.protocol import GenerationParams

    out, _, validation = trained_reader
    lm = HFLM.load(str(out), device="cpu")
    prompts = [e.prompt for e in validation]
    full = lm.complete(prompts, GenerationParams(max_new_tokens=24))
    cut = lm.complete(prompts, GenerationParams(max_new_tokens=1))
    for f, c in zip(full, cut):
        assert f.finish_reason == "stop"
        assert f.text.startswith(c.text)
        assert c.finish_reason == ("length" if c.text != f.text else "stop")


def test_reader_settings_are_validated_in_one_line():
    from pydantic import ValidationError

    from memorylab.schema.memory_agent import ReaderConfig

    with pytest.raises(ValidationError, match="multiple of 4"):
        ReaderConfig(width=30)
    with pytest.raises(ValidationError, match="dropout"):
        ReaderConfig(dropout=1.0)
    with pytest.raises(ValidationError, match="num_cpus"):
        ReaderConfig(num_cpus=0)


def test_the_reader_stage_runs_as_a_ray_task_and_is_reused_on_restart(tmp_path, tiny_model_dir, tiny_world,
                                                                       ray_cluster):
    from memorylab.schema.memory_agent import MemoryAgentScenario
    from memorylab.serve.generator_model import train_reader
    from tests.serve.served_app import scenario

    data = scenario(8000)
    data["generator"]["reader"] = {"steps": 4, "examples": 30, "people": 20, "width": 16}
    agent = MemoryAgentScenario.model_validate(data)
    path = Path(train_reader(agent, tiny_world, Path(tiny_model_dir), tmp_path))
    assert path == tmp_path / "models" / "reader" / "final" and has_reader_head(path)
    written = (path / "reader_head.safetensors").stat().st_mtime_ns
    assert train_reader(agent, tiny_world, Path(tiny_model_dir), tmp_path) == str(path)
    assert (path / "reader_head.safetensors").stat().st_mtime_ns == written  # reused, not retrained
    changed = agent.model_copy(update={"generator": agent.generator.model_copy(
        update={"reader": agent.generator.reader.model_copy(update={"steps": 5})})})
    train_reader(changed, tiny_world, Path(tiny_model_dir), tmp_path)
    record = json.loads((path / "reader_head.json").read_text())
    assert record["steps"] == 5 and record["threads"] == 1  # other settings: trained again, on the trainer's CPU


def test_the_reader_takes_the_cpus_it_is_given_and_refuses_more_than_ray_has(tmp_path, tiny_model_dir, tiny_world,
                                                                            ray_cluster):
    from memorylab.errors import MemorylabError
    from memorylab.schema.memory_agent import MemoryAgentScenario
    from memorylab.serve.generator_model import train_reader
    from tests.serve.served_app import scenario

    data = scenario(8000)
    data["generator"]["reader"] = {"steps": 2, "examples": 20, "people": 20, "width": 16, "num_cpus": 2}
    path = Path(train_reader(MemoryAgentScenario.model_validate(data), tiny_world, Path(tiny_model_dir), tmp_path))
    assert json.loads((path / "reader_head.json").read_text())["threads"] == 2
    data["generator"]["reader"]["num_cpus"] = 64
    with pytest.raises(MemorylabError, match=r"^generator.reader.num_cpus 64: this Ray has 2 CPUs"):
        train_reader(MemoryAgentScenario.model_validate(data), tiny_world, Path(tiny_model_dir), tmp_path / "more")


def test_projection_reads_each_token_and_its_predecessor():
    """projected() is the project layer over [a token's features, its predecessor's (zeros for the first)],
    computed without the concatenation."""
    torch.manual_seed(0)
    head = ReaderHead(HeadShape(feature_size=16, width=8, layers=1, max_positions=64))
    features = torch.randn(3, 10, 32)
    before = torch.cat([torch.zeros_like(features[:, :1]), features[:, :-1]], dim=1)
    expected = head.project(torch.cat([features, before], dim=-1))
    assert torch.allclose(head.projected(features), expected, atol=1e-5)


def test_lines_score_the_hop_attention_their_names_drew(tiny_model_dir):
    """named_lines: the hop's attention on a name's tokens in one line (a nickname's line) raises every line that
    mentions that name, each name word counted once per line; a namesake (one shared word) gets that word's part."""
    from transformers import AutoTokenizer

    from memorylab.models.name_links import named_lines

    memories = ("We call Ada Park the tall fox.", "Ada Park was born in Lisbon.", "Ada Stone was born in Porto.",
                "Bo Lee was born in Oslo.")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    prompt = memory_prompt(memories, "Where was the tall fox born?")
    x = layout(tokenizer, prompt, tokenizer.eos_token_id, memory_part(prompt))
    names, lines = torch.tensor([x.names]), torch.tensor([x.lines])
    read = torch.zeros(1, len(x.ids))
    first = x.lines.index(0)
    we = x.names[first]  # "We" is a capitalised word too: the hop's attention goes to "Ada" and "Park" only
    on_name = [k for k, (n, line) in enumerate(zip(x.names, x.lines)) if line == 0 and n > 0 and n != we]
    read[0, on_name] = 1.0 / len(on_name)
    score = named_lines(read, names, lines)[0]
    per_line = {line: float(score[[k for k, li in enumerate(x.lines) if li == line]].max()) for line in range(4)}
    ada_number = x.names[prompt_token_at(x, prompt.index("Ada"))]
    ada = sum(float(read[0, k]) for k in on_name if x.names[k] == ada_number)
    assert per_line[0] == pytest.approx(per_line[1]) and per_line[1] > per_line[2] > per_line[3] == 0.0
    assert per_line[2] == pytest.approx(ada)  # the namesake shares "Ada" only
    assert float(score[torch.tensor(x.lines) < 0].abs().sum()) == 0.0  # the question and separators: nothing


def test_the_gate_is_told_whether_the_memories_name_whom_the_question_asks_about(tiny_model_dir):
    from transformers import AutoTokenizer

    from memorylab.models.name_links import asked_names_found

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)

    def found(memories, question):
        prompt = memory_prompt(memories, question)
        x = layout(tokenizer, prompt, tokenizer.eos_token_id, memory_part(prompt))
        return asked_names_found(torch.tensor([x.names]), torch.tensor([x.regions]))[0].tolist()

    told = ("Ada Park was born in Lisbon.", "Bo Lee works as a nurse.", "We call Bo Lee the tall fox.")
    known, nickname = found(told, "Where was Ada Park born?"), found(told, "Where was the tall fox born?")
    assert known[0] == 2.0  # "Ada" and "Park"
    assert nickname[0] == 0.0 and nickname[1] == known[1]  # names nobody, misses only "Question", "Where", ...
    assert found(told, "Where was Ada Stone born?") == [1.0, known[1] + 1]  # a namesake
    assert found(told, "Where was Rexny Drys born?") == [0.0, known[1] + 2]  # nobody the memories mention


def prompt_token_at(x, char: int) -> int:
    return next(k for k, (a, b) in enumerate(x.offsets) if a <= char < b)
