"""Quality reports for intent models: metrics, out-of-scope recall, cross-validation and plots."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.intent_eval import Report, cross_validate, evaluate, plot_confusion, plot_reliability, reliability
from agent.intents import Example, IntentModel, Ranked, default_examples
from core.embeddings import sentence_encoder

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

HANDFUL = [
    Example("我的订单KF100234到哪了", "order_status", "zh"),
    Example("转人工", "human_agent", "zh"),
    Example("谢谢，再见", "goodbye", "zh"),
    Example("我要退货退款", "return_refund", "zh"),
    Example("I want to talk to a real person", "human_agent", "en"),
    Example("thanks, bye", "goodbye", "en"),
    Example("I want to cancel my order KF100234", "cancel_order", "en"),
    Example("how do I change my password", "account_profile", "en"),
]

# Out-of-scope rows as in CLINC150 ("oos"), chosen so the shipped model is far from sure about them.
WITH_OOS = [
    *HANDFUL[:4],
    Example("asdf qwer zxcv", "oos", "en"),
    Example("translate hello into french", "oos", "en"),
    Example("蓝色", "oos", "zh"),
    Example("你觉得量子力学怎么样", "oos", "zh"),
]


@pytest.fixture(scope="module")
def report(intent_model: IntentModel) -> Report:
    return evaluate(intent_model, HANDFUL)


def _small_set(
    labels: Sequence[str] = ("greeting", "goodbye", "order_status", "human_agent"), per_label: int = 12
) -> list[Example]:
    """``per_label`` distinct shipped examples of each of ``labels``, both languages."""
    taken: Counter[str] = Counter()
    chosen: dict[str, Example] = {}
    for example in default_examples():
        if example.label in labels and taken[example.label] < per_label and example.text not in chosen:
            taken[example.label] += 1
            chosen[example.text] = example
    return list(chosen.values())


# ---------------------------------------------------------------- evaluate


def test_evaluate_reports_metrics_in_range(report: Report) -> None:
    assert report.n == len(HANDFUL)
    assert 0.0 <= report.accuracy <= 1.0
    assert 0.0 <= report.macro_f1 <= 1.0
    assert report.gold == [e.label for e in HANDFUL]
    assert len(report.predicted) == len(report.confidence) == len(HANDFUL)
    assert all(0.0 <= c <= 1.0 for c in report.confidence)


def test_evaluate_scores_clear_messages_well(report: Report) -> None:
    assert report.accuracy == 1.0
    assert report.macro_f1 == 1.0


def test_evaluate_reports_every_gold_label(report: Report) -> None:
    assert set(report.per_label) >= {e.label for e in HANDFUL}
    for label, (precision, recall, support) in report.per_label.items():
        assert 0.0 <= precision <= 1.0
        assert 0.0 <= recall <= 1.0
        assert support == sum(e.label == label for e in HANDFUL)
    assert report.per_label["human_agent"][2] == 2


def test_evaluate_measures_latency(report: Report) -> None:
    assert report.latency_p50_ms > 0
    assert report.latency_p99_ms >= report.latency_p50_ms


def test_accuracy_counts_mistakes(intent_model: IntentModel) -> None:
    mislabelled = [Example("转人工", "greeting", "zh"), Example("thanks, bye", "goodbye", "en")]
    result = evaluate(intent_model, mislabelled)
    assert result.accuracy == 0.5
    assert result.per_label["greeting"][1] == 0.0  # recall of the mislabelled gold
    assert result.per_label["goodbye"] == (1.0, 1.0, 1)


def test_oos_recall_is_none_without_oos_labels(report: Report) -> None:
    assert report.oos_recall is None


def test_oos_recall_with_oos_labels(intent_model: IntentModel) -> None:
    # The model predicts out_of_scope, not "oos", so nothing counts as oos without rejection.
    plain = evaluate(intent_model, WITH_OOS)
    assert plain.oos_recall == 0.0
    assert plain.per_label["oos"] == (0.0, 0.0, 4)


def test_rejecting_below_099_recalls_every_oos_row(intent_model: IntentModel) -> None:
    result = evaluate(intent_model, WITH_OOS, reject_below=0.99)
    assert result.oos_recall == 1.0
    assert [p for e, p in zip(WITH_OOS, result.predicted, strict=True) if e.label == "oos"] == ["oos"] * 4
    assert result.per_label["oos"][1] == 1.0
    # Clear in-scope messages stay above the bar and keep their label.
    assert result.predicted[:4] == [e.label for e in WITH_OOS[:4]]


def test_rejecting_everything_predicts_only_oos(intent_model: IntentModel) -> None:
    forced = evaluate(intent_model, WITH_OOS, reject_below=1.01)
    assert forced.predicted == ["oos"] * len(WITH_OOS)
    assert forced.oos_recall == 1.0
    assert forced.accuracy == pytest.approx(4 / 8)


def test_reject_below_099_makes_oos_rows_recalled(intent_model: IntentModel) -> None:
    oos_rows = [e for e in WITH_OOS if e.label == "oos"]
    confidences = [r.confidence for r in intent_model.rank([e.text for e in oos_rows])]
    result = evaluate(intent_model, WITH_OOS, reject_below=0.99)
    # A row is recalled when rejected (confidence below 0.99) or predicted "oos" outright.
    expected = sum(c < 0.99 for c in confidences) / len(oos_rows)
    assert result.oos_recall == pytest.approx(expected)


def test_oos_recall_for_kefus_own_out_of_scope_label(intent_model: IntentModel) -> None:
    data = [*HANDFUL[:4], Example("what's the weather in Paris tomorrow", "out_of_scope", "en")]
    result = evaluate(intent_model, data)
    assert result.oos_recall == 1.0


def test_reject_below_without_oos_labels_changes_nothing(intent_model: IntentModel, report: Report) -> None:
    result = evaluate(intent_model, HANDFUL, reject_below=0.99)
    assert result.predicted == report.predicted
    assert result.oos_recall is None


# ---------------------------------------------------------------- cross-validation


def test_cross_validate_predicts_every_example_once() -> None:
    examples = _small_set()
    assert len(examples) == 48
    ranked_texts: list[str] = []
    training_sets: list[set[str]] = []

    def train(subset: Sequence[Example]) -> IntentModel:
        model = IntentModel.train(subset, sentence_encoder())
        seen = {e.text for e in subset}
        training_sets.append(seen)
        rank = model.rank

        def recording_rank(texts: Sequence[str]) -> list[Ranked]:
            for text in texts:
                assert text not in seen, f"{text!r} was predicted by a model trained on it"
            ranked_texts.extend(texts)
            return rank(texts)

        model.rank = recording_rank  # type: ignore[method-assign]
        return model

    result = cross_validate(examples, train, folds=3)
    assert len(training_sets) == 3
    assert all(len(seen) == 32 for seen in training_sets)
    assert sorted(ranked_texts) == sorted(e.text for e in examples)
    assert result.n == 48
    assert Counter(result.gold) == Counter(e.label for e in examples)
    assert len(result.predicted) == len(result.confidence) == 48
    assert set(result.per_label) >= {"greeting", "goodbye", "order_status", "human_agent"}
    assert 0.5 <= result.accuracy <= 1.0
    assert 0.0 <= result.macro_f1 <= 1.0
    assert result.latency_p50_ms > 0
    assert result.oos_recall is None


# ---------------------------------------------------------------- plots and reliability


def test_plot_confusion_writes_a_png(tmp_path: Path, report: Report) -> None:
    path = plot_confusion(report, tmp_path / "plots" / "confusion.png")
    assert path == tmp_path / "plots" / "confusion.png"
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


def test_plot_reliability_writes_a_png(tmp_path: Path, report: Report) -> None:
    path = plot_reliability(report, tmp_path / "nested" / "reliability.png", thresholds=(0.45, 0.8))
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 1000


def test_reliability_bins_count_every_prediction(report: Report) -> None:
    rows = reliability(report)
    assert rows
    assert sum(count for _conf, _acc, count in rows) == report.n
    for mean_confidence, accuracy, count in rows:
        assert 0.0 <= mean_confidence <= 1.0
        assert 0.0 <= accuracy <= 1.0
        assert count > 0


def test_reliability_bins_by_confidence() -> None:
    made = Report(
        n=4,
        accuracy=0.5,
        macro_f1=0.5,
        per_label={},
        oos_recall=None,
        latency_p50_ms=1.0,
        latency_p99_ms=1.0,
        gold=["a", "a", "b", "b"],
        predicted=["a", "b", "b", "a"],
        confidence=[0.05, 0.15, 1.0, 0.95],
    )
    rows = reliability(made, bins=10)
    assert [count for _c, _a, count in rows] == [1, 1, 2]
    assert rows[0] == pytest.approx((0.05, 1.0, 1))
    assert rows[1] == pytest.approx((0.15, 0.0, 1))
    assert rows[2] == pytest.approx((0.975, 0.5, 2))
    assert sum(count for _c, _a, count in reliability(made, bins=3)) == 4
