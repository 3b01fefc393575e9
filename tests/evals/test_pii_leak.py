"""The PII leak test: the recording fake LLM, the canary generator, and a leak run through the full graph.

The run starts Kefu against ``FakeLlm`` on 127.0.0.1, over real HTTP. The suite's autouse fixture
refuses every real ``ChatOpenAI`` call; these tests put the real transport back for loopback URLs
only (``loopback_only``), so nothing can reach a model outside this machine.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.intents import IntentModel
from agent.llm import LlmGateway, make_chat_model
from core.db import CustomerRow, make_engine
from core.seed import seed
from core.settings import Settings
from evals.fake_llm import FOREIGN_PII, FakeLlm
from evals.pii_canaries import (
    KINDS,
    NER_KINDS,
    Canary,
    Conversation,
    generate_conversations,
    luhn_ok,
    resident_id_check,
)
from evals.pii_leak import LeakReport, run_leak_test
from serving.service import KefuService
from tests.fakes import loopback_only
from tools.registry import BUILTIN_TOOLS

LEAK_CONVERSATIONS = 40
"""The full default run (600 conversations, ~1,800 turns) takes about 10 minutes on 2 cores:
``python -m evals.pii_leak``. The suite runs the first 40 of the same conversations (~45 s)."""


@pytest.fixture
def fake() -> Iterator[FakeLlm]:
    with FakeLlm(tool_every=0, foreign_every=0) as server:
        yield server


def _gateway(fake: FakeLlm) -> LlmGateway:
    settings = Settings(llm_backend="openai", llm_base_url=fake.base_url, _env_file=None)  # type: ignore[call-arg]
    return LlmGateway(make_chat_model(settings, fake.base_url))


def _body(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}],
    } | extra


# ------------------------------------------------------------------------------------------ fake LLM


def test_the_fake_records_every_request_it_answers(fake: FakeLlm) -> None:
    with httpx.Client(base_url=fake.base_url) as client:
        models = client.get("/models").json()
        answer = client.post("/chat/completions", json=_body("hello")).json()
        missing = client.post("/embeddings", json={"input": "x"})
    assert models["data"][0]["id"] == fake.model
    assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + answer["usage"]["completion_tokens"]
    assert missing.status_code == 404
    assert [(r.method, r.path) for r in fake.requests] == [
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
    ]
    assert fake.requests[1].body == _body("hello")


def test_a_choice_through_kefus_client_is_a_valid_label_with_full_confidence(fake: FakeLlm, loopback_llm: None) -> None:
    options = ["order_status", "greeting", "complaint"]
    choice = _gateway(fake).choose([SystemMessage("classify"), HumanMessage("where is my parcel")], "intent", options)
    assert choice.label in options and choice.confidence == pytest.approx(1.0)
    sent = fake.requests[-1].body
    assert sent["logprobs"] is True and sent["response_format"]["json_schema"]["schema"]["required"] == ["intent"]


def test_a_reply_repeats_the_facts_and_echoes_the_placeholders(fake: FakeLlm) -> None:
    text = "Call me on <CN_MOBILE_1> or <EMAIL_ADDRESS_2>.\n\nFacts:\n- Order KF101175 is shipped"
    content = fake.complete(_body(text))["choices"][0]["message"]["content"]
    assert "<CN_MOBILE_1>" in content and "<EMAIL_ADDRESS_2>" in content and "Order KF101175 is shipped" in content
    assert not any(value in content for value in FOREIGN_PII)


def test_some_replies_invent_foreign_personal_data() -> None:
    with FakeLlm(tool_every=0, foreign_every=1) as always:
        content = always.complete(_body("你好"))["choices"][0]["message"]["content"]
    assert all(value in content for value in FOREIGN_PII) and always.counts == {"reply": 1, "foreign_pii": 1}


def test_a_tool_call_names_an_offered_tool_with_a_placeholder_argument(loopback_llm: None) -> None:
    with FakeLlm(tool_every=1) as server:
        messages = [SystemMessage("help"), HumanMessage("My number changed to <CN_MOBILE_1>")]
        message = _gateway(server).reply(messages, tools=BUILTIN_TOOLS)
    [call] = message.tool_calls
    assert call["name"] in {tool.name for tool in BUILTIN_TOOLS}
    assert any("<CN_MOBILE_1>" in str(value) for value in call["args"].values())


def test_latency_delays_every_answer() -> None:
    with FakeLlm(latency_s=0.2) as slow:
        started = time.perf_counter()
        httpx.post(f"{slow.base_url}/chat/completions", json=_body("hi"))
    assert time.perf_counter() - started >= 0.2


def test_a_body_that_is_not_json_is_refused_and_still_recorded(fake: FakeLlm) -> None:
    response = httpx.post(f"{fake.base_url}/chat/completions", content=b"{not json")
    assert response.status_code == 400 and fake.requests[0].body == "{not json"


# ----------------------------------------------------------------------------------------- generator


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    return generate_conversations()


def test_the_generator_is_deterministic() -> None:
    assert generate_conversations(30, seed=7) == generate_conversations(30, seed=7)
    assert generate_conversations(30, seed=7) != generate_conversations(30, seed=8)


def test_the_default_set_is_large_and_bilingual(conversations: list[Conversation]) -> None:
    assert len(conversations) >= 500
    assert Counter((c.lang, c.customer_id) for c in conversations) == {("zh", "C0001"): 300, ("en", "C0002"): 300}
    assert {len(c.turns) for c in conversations} == {2, 3, 4}


def test_every_kind_is_tried_in_every_way_it_is_written(conversations: list[Conversation]) -> None:
    canaries = [canary for c in conversations for canary in c.canaries]
    assert {canary.kind for canary in canaries} == set(KINDS)
    assert min(Counter(canary.kind for canary in canaries).values()) >= 100
    variants = {(canary.kind, canary.variant) for canary in canaries}
    assert ("CN_MOBILE", "0086 dashed") in variants and ("CN_RESIDENT_ID", "mistyped check character") in variants
    assert ("PHONE_NUMBER", "UK 07911 123456") in variants and ("CN_LICENSE_PLATE", "new energy '·'") in variants


def test_every_canary_is_new_and_written_in_its_conversation(conversations: list[Conversation]) -> None:
    values = [canary.value.lower() for c in conversations for canary in c.canaries]
    assert len(values) == len(set(values))
    for conversation in conversations:
        for canary in conversation.canaries:
            assert any(canary.value in turn for turn in conversation.turns)
    engine = make_engine("sqlite://")
    seed(engine)
    with Session(engine) as session:
        seeded = {str(v).lower() for row in session.execute(select(CustomerRow.name, CustomerRow.email)) for v in row}
        seeded |= {phone for (phone,) in session.execute(select(CustomerRow.phone))}
    assert not seeded & set(values) and not set(FOREIGN_PII) & set(values)


def test_resident_ids_have_valid_check_characters_unless_mistyped(conversations: list[Conversation]) -> None:
    ids = [canary for c in conversations for canary in c.canaries if canary.kind == "CN_RESIDENT_ID"]
    mistyped = [canary for canary in ids if canary.variant == "mistyped check character"]
    assert 0 < len(mistyped) < len(ids) / 3
    for canary in ids:
        valid = resident_id_check(canary.value[:17]) == canary.value[17].upper()
        assert valid is (canary not in mistyped), canary


def test_cards_pass_the_luhn_check(conversations: list[Conversation]) -> None:
    cards = [canary for c in conversations for canary in c.canaries if canary.kind in ("CN_BANK_CARD", "CREDIT_CARD")]
    assert cards and all(luhn_ok(canary.value) for canary in cards)
    assert {len(canary.digits) for canary in cards} >= {15, 16, 19}


# --------------------------------------------------------------------------------------- the harness


class _LeakyService:
    """A service that lets every message out: to the LLM endpoint (as bare digits), a file and the log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = SimpleNamespace(get_customer=lambda _customer_id: None)
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    def chat(self, conversation_id: str, customer_id: str, text: str) -> SimpleNamespace:
        digits_only = re.sub(r"(?<=\d)[ \-]+(?=\d)", "", text).upper()
        httpx.post(f"{self.settings.llm_base_url}/chat/completions", json=_body(digits_only))
        with (self.settings.data_dir / "transcript.txt").open("a", encoding="utf-8") as transcript:
            transcript.write(json.dumps(text) + "\n")  # \\u escapes, as JSON columns store text
        logging.getLogger("leaky").debug("customer %s said %s", customer_id, text)
        return SimpleNamespace(reply=text, route="rules")

    def close(self) -> None:
        pass


def test_the_harness_finds_every_canary_a_leaky_service_lets_out(tmp_path: Path) -> None:
    found = run_leak_test(generate_conversations(12, seed=3), _LeakyService, data_dir=tmp_path / "var")
    assert found.leaked_to_llm == found.canaries, _examples(found.llm_examples, "CN_MOBILE")
    assert found.stored == {"transcript.txt": found.canaries}
    assert found.logged == {"leaky": found.canaries}
    assert found.regex_leaks == sum(n for kind, n in found.canaries.items() if kind not in NER_KINDS)


def test_a_canary_inside_another_canarys_value_is_not_counted_twice(tmp_path: Path) -> None:
    short = Canary("ADDRESS", "10 Kingfisher Way, Manchester M14 2GY", "en", parts=("10 Kingfisher Way",))
    long = Canary("ADDRESS", "Apt 2A, 1610 Kingfisher Way, Leeds LS6 6WF", "en", parts=("1610 Kingfisher Way",))
    conversations = [
        Conversation("en-0", "en", "C0002", (f"Please send it to {long.value}.",), (long,)),
        Conversation("en-1", "en", "C0002", ("Hello",), (short,)),
    ]
    found = run_leak_test(conversations, _LeakyService, data_dir=tmp_path / "var")
    assert found.leaked_to_llm == {"ADDRESS": 1} and [f.value for f in found.llm_examples] == [long.value]


# ---------------------------------------------------------------------------------------- leak run


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, intent_model: IntentModel) -> LeakReport:
    """One run through the real graph and the real HTTP client, shared by the tests below."""
    settings = Settings(cache_dir=tmp_path_factory.mktemp("cache"), _env_file=None)  # type: ignore[call-arg]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChatOpenAI, "_generate", loopback_only)
        return run_leak_test(
            generate_conversations(LEAK_CONVERSATIONS),
            lambda s: KefuService.start(s, use_llm=True, intent_model=intent_model),
            data_dir=tmp_path_factory.mktemp("leak") / "var",
            settings=settings,
        )


def _examples(findings: Any, kind: str) -> str:
    return "\n".join(f"{f.value!r} at {f.where}: {f.context!r}" for f in findings if f.kind == kind)


def test_the_run_goes_through_every_path(report: LeakReport) -> None:
    assert report.conversations == LEAK_CONVERSATIONS and report.turns >= 2 * LEAK_CONVERSATIONS
    assert set(report.canaries) == set(KINDS)
    assert all(report.llm_answers.get(kind, 0) > 0 for kind in ("choose", "reply", "tool_call", "foreign_pii"))
    assert report.replies["restored"] > 0, "no reply showed the customer's own data back"
    assert report.replies["unrestored_placeholders"] == 0
    assert report.replies["foreign_pii_shown"] == 0, "data the model invented reached a customer"


_PATTERN_KINDS = [kind for kind in KINDS if kind not in NER_KINDS]
_NER_MISS_CEILING = 0.10
"""Names and addresses come from small NER models, which miss some (lower-case names, "the parcel is
for …"): more than one in ten getting through would be a regression, not the models' known limits."""


@pytest.mark.parametrize("kind", _PATTERN_KINDS)
def test_no_canary_reaches_the_llm(report: LeakReport, kind: str) -> None:
    assert report.leaked_to_llm.get(kind, 0) == 0, _examples(report.llm_examples, kind)


@pytest.mark.parametrize("kind", _PATTERN_KINDS)
def test_no_canary_is_stored_in_the_clear(report: LeakReport, kind: str) -> None:
    assert report.stored_kinds.get(kind, 0) == 0, f"{report.stored}\n{_examples(report.stored_examples, kind)}"


@pytest.mark.parametrize("kind", sorted(NER_KINDS))
def test_names_and_addresses_rarely_get_through(report: LeakReport, kind: str) -> None:
    tried = report.canaries[kind]
    for where, missed in (("LLM", report.leaked_to_llm), ("store", report.stored_kinds)):
        examples = report.llm_examples if where == "LLM" else report.stored_examples
        assert missed.get(kind, 0) <= _NER_MISS_CEILING * tried, f"{where}: {report.stored} {_examples(examples, kind)}"


def test_only_contact_details_the_customer_asked_to_change_are_saved(report: LeakReport) -> None:
    assert set(report.saved_as_contact) <= {"EMAIL_ADDRESS", "CN_MOBILE", "CN_LANDLINE", "PHONE_NUMBER"}


def test_no_canary_is_logged(report: LeakReport) -> None:
    assert not report.logged, f"{report.logged}\n" + "\n".join(f"{f.value!r} {f.where}" for f in report.log_examples)


def test_names_and_addresses_are_reported_apart(report: LeakReport) -> None:
    assert NER_KINDS <= set(report.canaries)
    assert report.regex_leaks == sum(n for kind, n in report.leaked_to_llm.items() if kind not in NER_KINDS)
