"""The intent classifier: JSONL data, the shipped training set, ranking and versioned artifacts."""

# Chinese test messages use full-width punctuation, as customers type them.

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from agent.intents import Example, IntentModel, Ranked, default_examples, load_examples, load_or_train
from agent.machine import Intent
from core.embeddings import sentence_encoder
from core.errors import ConfigError, ModelError


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(row, ensure_ascii=False) for row in rows) + "\n", encoding="utf-8")
    return path


def _subset(per_label: int) -> list[Example]:
    """The first ``per_label`` shipped examples of every label (both languages mixed as shipped)."""
    taken: Counter[str] = Counter()
    subset = []
    for example in default_examples():
        if taken[example.label] < per_label:
            taken[example.label] += 1
            subset.append(example)
    return subset


@pytest.fixture(scope="module")
def small_model() -> IntentModel:
    """A quick model on 10 examples per label."""
    return IntentModel.train(_subset(10), sentence_encoder())


# ---------------------------------------------------------------- load_examples


def test_load_examples_reads_text_label_and_lang(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "data.jsonl",
        [
            {"text": "你好", "label": "greeting", "lang": "zh"},
            {"text": "where is my order", "label": "order_status", "lang": "en"},
            {"text": "no lang given", "label": "chitchat"},
        ],
    )
    assert load_examples([path]) == [
        Example("你好", "greeting", "zh"),
        Example("where is my order", "order_status", "en"),
        Example("no lang given", "chitchat", "en"),
    ]


def test_load_examples_reads_several_files_in_order(tmp_path: Path) -> None:
    first = _write_jsonl(tmp_path / "a.jsonl", [{"text": "a", "label": "x"}])
    second = _write_jsonl(tmp_path / "b.jsonl", [{"text": "b", "label": "y"}])
    assert [e.text for e in load_examples([first, second])] == ["a", "b"]


def test_load_examples_split_keeps_the_split_and_its_oos_rows(tmp_path: Path) -> None:
    path = _write_jsonl(
        tmp_path / "clinc.jsonl",
        [
            {"text": "train in scope", "label": "balance", "meta": {"split": "train"}},
            {"text": "test in scope", "label": "balance", "meta": {"split": "test"}},
            {"text": "train oos", "label": "oos", "meta": {"split": "oos_train"}},
            {"text": "test oos", "label": "oos", "meta": {"split": "oos_test"}},
            {"text": "val row", "label": "balance", "meta": {"split": "val"}},
            {"text": "no meta", "label": "balance"},
            {"text": "null meta", "label": "balance", "meta": None},
        ],
    )
    assert [e.text for e in load_examples([path], split="test")] == ["test in scope", "test oos"]
    assert [e.text for e in load_examples([path], split="train")] == ["train in scope", "train oos"]
    assert len(load_examples([path])) == 7


def test_load_examples_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(
        '\n{"text": "hi", "label": "greeting"}\n   \n\n{"text": "bye", "label": "goodbye"}\n\n', encoding="utf-8"
    )
    assert [e.label for e in load_examples([path])] == ["greeting", "goodbye"]


@pytest.mark.parametrize(
    "bad_line",
    ["{not json", '{"text": "no label"}', '{"label": "no text"}', '["a", "list"]', '"a string"', "null"],
)
def test_a_malformed_row_names_file_and_line(tmp_path: Path, bad_line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "label": "greeting"}\n\n' + bad_line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:3\b"):
        load_examples([path])


def test_a_missing_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.jsonl"):
        load_examples([tmp_path / "missing.jsonl"])


def test_a_folder_is_not_a_data_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_examples([tmp_path])


# ---------------------------------------------------------------- shipped data


def test_default_examples_cover_every_intent_in_both_languages() -> None:
    examples = default_examples()
    counts = Counter((e.label, e.lang) for e in examples)
    assert {e.label for e in examples} == {intent.value for intent in Intent}
    assert {e.lang for e in examples} == {"zh", "en"}
    for intent in Intent:
        for lang in ("zh", "en"):
            assert counts[(intent.value, lang)] >= 40, (intent.value, lang)


def test_default_examples_have_text() -> None:
    assert all(e.text.strip() for e in default_examples())


# ---------------------------------------------------------------- training


def test_train_refuses_a_label_with_too_few_examples() -> None:
    examples = _subset(6)
    examples = [e for e in examples if e.label != "goodbye"] + [e for e in examples if e.label == "goodbye"][:4]
    with pytest.raises(ConfigError, match="goodbye"):
        IntentModel.train(examples, sentence_encoder())


def test_train_refuses_a_single_label() -> None:
    examples = [e for e in _subset(10) if e.label == "greeting"]
    with pytest.raises(ConfigError):
        IntentModel.train(examples, sentence_encoder())


def test_train_records_what_it_was_trained_on(small_model: IntentModel) -> None:
    assert small_model.labels == sorted(intent.value for intent in Intent)
    assert small_model.meta["examples"] == 10 * len(Intent)
    assert small_model.meta["labels"] == {intent.value: 10 for intent in Intent}
    assert len(small_model.version) == 12
    int(small_model.version, 16)  # a hex digest


# ---------------------------------------------------------------- ranking


def test_rank_returns_every_label_sorted_with_probabilities_summing_to_one(intent_model: IntentModel) -> None:
    ranked = intent_model.rank(["我的订单KF100234到哪了", "hello", "随便说点什么吧"])
    assert len(ranked) == 3
    for item in ranked:
        assert sorted(item.labels) == sorted(intent_model.labels) == sorted(intent.value for intent in Intent)
        assert len(item.probs) == len(item.labels)
        assert list(item.probs) == sorted(item.probs, reverse=True)
        assert all(0.0 <= p <= 1.0 for p in item.probs)
        assert sum(item.probs) == pytest.approx(1.0, abs=1e-6)
        assert item.top == item.labels[0]
        assert item.confidence == item.probs[0]


def test_rank_of_nothing_is_empty(intent_model: IntentModel) -> None:
    assert intent_model.rank([]) == []


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("我的订单KF100234到哪了", "order_status"),
        ("我要退货退款", "return_refund"),
        ("转人工", "human_agent"),
        ("推荐一款适合跑步的耳机", "product_recommendation"),
        ("谢谢，再见", "goodbye"),
        ("I want to talk to a real person", "human_agent"),
        ("thanks, bye", "goodbye"),
        ("what's the weather in Paris tomorrow", "out_of_scope"),
        ("I want to cancel my order KF100234", "cancel_order"),
        ("how do I change my password", "account_profile"),
    ],
)
def test_clear_messages_get_the_right_top_intent(intent_model: IntentModel, text: str, label: str) -> None:
    (ranked,) = intent_model.rank([text])
    assert ranked.top == label, ranked.labels[:3]


def test_ranks_are_the_same_one_at_a_time_and_in_a_batch(intent_model: IntentModel) -> None:
    texts = ["转人工", "thanks, bye", "我要退货退款"]
    batch = intent_model.rank(texts)
    for text, expected in zip(texts, batch, strict=True):
        (alone,) = intent_model.rank([text])
        assert alone.labels == expected.labels
        assert alone.probs == pytest.approx(expected.probs, abs=1e-6)


def test_margin_is_the_gap_between_the_top_two() -> None:
    ranked = Ranked(labels=("a", "b", "c"), probs=(0.6, 0.25, 0.15))
    assert ranked.top == "a"
    assert ranked.confidence == 0.6
    assert ranked.margin == pytest.approx(0.35)
    assert Ranked(labels=("a",), probs=(0.7,)).margin == pytest.approx(0.7)
    assert Ranked(labels=("a", "b"), probs=(0.5, 0.5)).margin == 0.0


def test_margin_of_the_real_model(intent_model: IntentModel) -> None:
    (ranked,) = intent_model.rank(["转人工"])
    assert ranked.margin == pytest.approx(ranked.probs[0] - ranked.probs[1])
    assert 0.0 <= ranked.margin <= ranked.confidence


# ---------------------------------------------------------------- versioned artifacts


def test_save_writes_the_artifact_and_marks_it_current(tmp_path: Path, small_model: IntentModel) -> None:
    root = tmp_path / "models"
    folder = small_model.save(root)
    assert folder == root / small_model.version
    assert (folder / "model.joblib").stat().st_size > 0
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    assert meta["version"] == small_model.version
    assert meta["examples"] == small_model.meta["examples"]
    assert "sklearn" in meta
    assert (root / "CURRENT").read_text(encoding="utf-8").strip() == small_model.version


def test_load_gives_back_the_same_model(tmp_path: Path, small_model: IntentModel) -> None:
    root = tmp_path / "models"
    small_model.save(root)
    loaded = IntentModel.load(root, sentence_encoder())
    assert loaded.version == small_model.version
    assert loaded.labels == small_model.labels
    assert loaded.meta == small_model.meta
    texts = ["我的订单KF100234到哪了", "I want to talk to a real person", "thanks, bye"]
    for before, after in zip(small_model.rank(texts), loaded.rank(texts), strict=True):
        assert after.labels == before.labels
        assert after.probs == before.probs


def test_load_accepts_an_artifact_folder(tmp_path: Path, small_model: IntentModel) -> None:
    folder = small_model.save(tmp_path / "models")
    assert IntentModel.load(folder, sentence_encoder()).version == small_model.version


def test_the_latest_save_is_current(tmp_path: Path, small_model: IntentModel, intent_model: IntentModel) -> None:
    root = tmp_path / "models"
    small_model.save(root)
    intent_model.save(root)
    assert IntentModel.load(root, sentence_encoder()).version == intent_model.version
    small_model.save(root)
    assert IntentModel.load(root, sentence_encoder()).version == small_model.version
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([small_model.version, intent_model.version])


def test_the_version_is_a_hash_of_the_data(small_model: IntentModel) -> None:
    examples = _subset(10)
    shuffled = examples[:]
    random.Random(7).shuffle(shuffled)
    again = IntentModel.train(shuffled, sentence_encoder())
    assert again.version == small_model.version
    changed = [*examples[:-1], Example(examples[-1].text + "?", examples[-1].label, examples[-1].lang)]
    assert IntentModel.train(changed, sentence_encoder()).version != small_model.version
    assert IntentModel.train(examples, sentence_encoder(), c=1.0).version != small_model.version


def test_a_model_from_another_sklearn_version_is_refused(tmp_path: Path, small_model: IntentModel) -> None:
    folder = small_model.save(tmp_path / "models")
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    meta["sklearn"] = "0.0.1"
    (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ModelError, match=r"0\.0\.1"):
        IntentModel.load(tmp_path / "models", sentence_encoder())


@pytest.mark.parametrize("keep", [(), ("meta.json",), ("model.joblib",)])
def test_a_folder_without_artifacts_is_refused(tmp_path: Path, small_model: IntentModel, keep: tuple[str, ...]) -> None:
    folder = small_model.save(tmp_path / "models")
    for name in ("meta.json", "model.joblib"):
        if name not in keep:
            (folder / name).unlink()
    with pytest.raises(ModelError):
        IntentModel.load(folder, sentence_encoder())


def test_an_empty_or_missing_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        IntentModel.load(tmp_path, sentence_encoder())
    with pytest.raises(ModelError):
        IntentModel.load(tmp_path / "nowhere", sentence_encoder())


def test_current_naming_a_missing_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "CURRENT").write_text("deadbeef0000", encoding="utf-8")
    with pytest.raises(ModelError):
        IntentModel.load(tmp_path, sentence_encoder())


def test_load_or_train_trains_once_then_loads(
    tmp_path: Path, intent_model: IntentModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    trained = load_or_train(root, sentence_encoder())
    assert trained.version == intent_model.version  # the shipped data, hashed the same way
    assert trained.meta["examples"] == len(default_examples())
    assert (root / "CURRENT").read_text(encoding="utf-8").strip() == trained.version
    assert (root / trained.version / "model.joblib").is_file()

    def no_training(*_args: object, **_kwargs: object) -> IntentModel:
        raise AssertionError("load_or_train retrained although a model was saved")

    monkeypatch.setattr(IntentModel, "train", no_training)
    loaded = load_or_train(root, sentence_encoder())
    assert loaded.version == trained.version
    texts = ["转人工", "what's the weather in Paris tomorrow"]
    assert [r.probs for r in loaded.rank(texts)] == [r.probs for r in trained.rank(texts)]
