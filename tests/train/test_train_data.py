"""train.data: sources to records, records to chat examples, the assistant-only labels token by token, long examples."""

import json

import pytest

from curation.output import write_dataset
from engine.errors import TTScaleError
from engine.formats import get_format
from train.data import IGNORE, assistant_text, build_dataset, check_lengths, load_records, to_messages, tokenize_example

S1K_ROW = {"solution": "5", "question": "What is 2+3?", "cot_type": "math", "source_type": "test", "metadata": "{}",
           "cot": None, "thinking_trajectories": ["2 plus 3 is 5."], "attempt": "5"}


def test_s1_format_is_s1s_example_text():
    text = assistant_text({"thinking": "trace", "answer": "42"}, get_format("s1"))
    assert text == "<|im_start|>think\ntrace\n<|im_start|>answer\nAnswer: 42"
    tags = assistant_text({"thinking": "trace\n", "answer": "42"}, get_format("think-tags"), answer_prefix="")
    assert tags == "<think>\ntrace\n</think>\n\n42"
    assert assistant_text({"thinking": "a whole LIMO solution", "answer": ""}, get_format("s1")) == "a whole LIMO solution"


def test_sources_curation_output_saved_dataset_and_jsonl(tmp_path):
    write_dataset(str(tmp_path / "out"), [S1K_ROW])  # what `ttscale curate` writes: OUT/dataset and OUT/s1k.parquet
    want = [{"question": "What is 2+3?", "thinking": "2 plus 3 is 5.", "answer": "5"}]
    assert load_records(str(tmp_path / "out")) == want
    assert load_records(str(tmp_path / "out" / "dataset")) == want
    r11 = {"question": "Q", "deepseek_thinking_trajectory": "T", "deepseek_attempt": "A", "gemini_attempt": "G"}
    limo = {"question": "Q", "solution": "S", "answer": "1"}
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(r11) + "\n\n")
    assert load_records(str(path)) == [{"question": "Q", "thinking": "T", "answer": "A"}]
    path.write_text(json.dumps(limo) + "\n")
    assert load_records(str(path)) == [{"question": "Q", "thinking": "S", "answer": ""}]
    path.write_text(json.dumps({"problem": "P", "trace": "T", "final": "F"}) + "\n")
    assert load_records(str(path), fields="question=problem,thinking=trace,answer=final") == [
        {"question": "P", "thinking": "T", "answer": "F"}]


@pytest.mark.parametrize("content, fields, match", [
    ('{"q": 1}\n', None, "known column sets"),
    ("not json\n", None, "line 1 is not JSON"),
    ('{"question": "", "thinking": "t", "answer": "a"}\n', None, "row 0 has an empty"),
    ('{"question": "q", "thinking": "t"}\n', "question=question,thinking=trace", "no column 'trace'"),
    ('{"question": "q", "thinking": "t"}\n', "question=question", "needs at least"),
])
def test_bad_sources_are_refused(tmp_path, content, fields, match):
    path = tmp_path / "d.jsonl"
    path.write_text(content)
    with pytest.raises(TTScaleError, match=match):
        load_records(str(path), fields=fields)


def test_missing_paths_are_refused(tmp_path):
    with pytest.raises(TTScaleError, match="no such file"):
        load_records(str(tmp_path / "none.jsonl"))
    with pytest.raises(TTScaleError, match="not a directory, a .jsonl file or a hub id"):
        load_records(str(tmp_path / "nothing" / "here"))


@pytest.mark.parametrize("fmt", ["s1", "think-tags"])
def test_labels_cover_exactly_the_assistant_turn(tokenizer, fmt):
    record = {"question": "What is 2+3? Think.", "thinking": "Two plus three: 2+3=5.", "answer": "$\\boxed{5}$"}
    messages = to_messages(record, get_format(fmt))
    row = tokenize_example(tokenizer, messages)
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels)
    # The prompt is the template's system + user turn + "<|im_start|>assistant\n": all masked, token by token.
    prompt_text = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    prompt = tokenizer.encode(prompt_text, add_special_tokens=False)
    assert ids[: len(prompt)] == prompt and prompt_text.endswith("<|im_start|>user\nWhat is 2+3? Think.<|im_end|>\n<|im_start|>assistant\n")
    assert all(label == IGNORE for label in labels[: len(prompt)])
    # Every assistant token (start, thinking, delimiter, separator, answer, end of turn) is labelled with its id.
    completion = tokenizer.encode(messages[1]["content"] + "<|im_end|>", add_special_tokens=False)
    assert ids[len(prompt):] == completion and labels[len(prompt):] == completion
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")  # ends on the end-of-turn token; ChatML's "\n" after it is dropped
    decoded = tokenizer.decode([t for t in labels if t != IGNORE])
    assert decoded == messages[1]["content"] + "<|im_end|>"


def test_a_template_without_prefix_preservation_or_without_template_is_refused(tokenizer):
    class NoTemplate:
        chat_template = None

    with pytest.raises(TTScaleError, match="no chat template"):
        tokenize_example(NoTemplate(), [])
    original = tokenizer.chat_template
    try:  # a template that renders the last turn differently from the generation prompt
        tokenizer.chat_template = ("{% for m in messages %}{% if loop.last and not add_generation_prompt %}[{{ m['role'] }}]"
                                   "{% else %}<{{ m['role'] }}>{% endif %}{{ m['content'] }}{% endfor %}"
                                   "{% if add_generation_prompt %}<assistant>{% endif %}")
        with pytest.raises(TTScaleError, match="prefix-preserving"):
            tokenize_example(tokenizer, to_messages({"question": "q", "thinking": "t", "answer": "a"}, get_format("s1")))
    finally:
        tokenizer.chat_template = original


def test_long_examples_are_refused_or_cut_and_counted(tokenizer):
    records = [{"question": "Q?", "thinking": "word " * n, "answer": "1"} for n in (5, 200, 300)]
    with pytest.raises(TTScaleError, match=r"^2 of 3 examples are longer than max_length 128 tokens \(the longest has \d+\); "
                                           r"raise --max-length to at least \d+ or pass --truncate"):
        build_dataset(records, tokenizer, get_format("s1"), max_length=128)
    data, report = build_dataset(records, tokenizer, get_format("s1"), max_length=128, truncate=True)
    assert report["too_long"] == report["truncated"] == 2 and report["examples"] == 3 and report["longest"] > 300
    assert [len(x) for x in data["input_ids"]][1:] == [128, 128] and len(data["labels"][0]) == len(data["input_ids"][0])
    with pytest.raises(TTScaleError, match="prompt alone fills"):
        build_dataset(records, tokenizer, get_format("s1"), max_length=10, truncate=True)
    assert check_lengths([3, 4], 4, False) == {"examples": 2, "too_long": 0, "longest": 4, "truncated": 0}


def test_a_hub_id_goes_to_load_dataset_with_its_split(monkeypatch):
    import datasets

    calls = []
    row = {"question": "Q", "deepseek_thinking_trajectory": "T", "deepseek_attempt": "A", "gemini_thinking_trajectory": "G"}

    def fake(name, split):
        calls.append((name, split))
        return datasets.Dataset.from_list([row])

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert load_records("simplescaling/s1K-1.1", split="train") == [{"question": "Q", "thinking": "T", "answer": "A"}]
    assert calls == [("simplescaling/s1K-1.1", "train")]
