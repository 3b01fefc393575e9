"""Span-level scoring of the redactor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.pii import PiiRedactor
from agent.pii_eval import PiiExample, evaluate_pii, load_pii_examples
from core.errors import ConfigError


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor(taggers=())  # patterns only: the test scores a name no recognizer finds


def test_scores_found_missed_and_false_spans(redactor: PiiRedactor) -> None:
    text = "Call 13812345678 or mail jane@example.com; I work at Initech; order KF100234"
    examples = [
        PiiExample(
            text,
            (
                (text.index("138"), text.index("138") + 11, "PHONE_NUMBER"),  # found as CN_MOBILE: same kind
                (text.index("jane@"), text.index("jane@") + 16, "EMAIL_ADDRESS"),
                (text.index("Initech"), text.index("Initech") + 7, "ORGANIZATION"),  # no recognizer
            ),
            "en",
        ),
        PiiExample("订单KF100234，¥1299.00，2026-11-01", (), "zh"),
    ]
    report = evaluate_pii(redactor, examples, redactor.supported_entities)
    assert report.per_kind["PHONE"]["recall"] == 1.0
    assert report.per_kind["EMAIL_ADDRESS"]["precision"] == 1.0
    assert report.per_kind["ORGANIZATION"]["recall"] == 0.0
    assert report.uncovered == ["ORGANIZATION"]
    assert report.covered_recall == 1.0 and report.covered_precision == 1.0
    assert report.latency_p50_ms > 0


def test_the_shipped_chinese_set_loads_and_covers_every_recognizer() -> None:
    examples = load_pii_examples([Path(__file__).parents[2] / "evals" / "data" / "pii_zh.jsonl"])
    assert len(examples) >= 300
    labels = {label for example in examples for _s, _e, label in example.spans}
    assert {"CN_MOBILE", "CN_LANDLINE", "CN_RESIDENT_ID", "CN_BANK_CARD", "CN_PASSPORT", "CN_LICENSE_PLATE"} <= labels
    assert {"EMAIL_ADDRESS", "IP_ADDRESS", "URL"} <= labels
    assert sum(not example.spans for example in examples) >= 80  # negatives


def test_malformed_rows_are_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "x", "spans": [{"start": 0}]}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.jsonl:1"):
        load_pii_examples([bad])
    with pytest.raises(ConfigError, match="no such data file"):
        load_pii_examples([tmp_path / "missing.jsonl"])
