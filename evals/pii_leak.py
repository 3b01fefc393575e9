r"""The PII leak test: canary personal data through the full graph, counted wherever it must not be.

``run_leak_test`` starts Kefu with the real graph against ``FakeLlm``, a recording
OpenAI-compatible endpoint on 127.0.0.1 reached over real HTTP, chats every turn of the
conversations from ``evals.pii_canaries`` as the demo customers (C0001 in Chinese, C0002 in
English), and then counts the canaries:

1. in any request that reached the LLM endpoint: the number that must be 0. Matching ignores
   case and also looks for numbers as bare digits (``138 1234 5678`` → ``13812345678``);
2. in what Kefu keeps: the bytes of every file in its data directory (SQLite databases and
   their WAL files; ``\u`` escapes too) and every log record of the run, captured at DEBUG.
   A phone number or e-mail address the customer asked to make their new contact detail is
   meant to be in the CRM; it is counted apart (``saved_as_contact``), as are names and
   addresses (``NER_KINDS``), which only named-entity recognition can find.

    python -m evals.pii_leak --conversations 600 --out evals/results/pii_leak.json

The service comes from a factory (``run_leak_test(conversations, service_factory)``), so the
eval never imports ``serving``: the layers contract keeps ``serving`` and ``evals`` apart.
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import json
import logging
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from pydantic import SecretStr

from core.ports import SupportStore
from core.settings import Settings
from core.types import CustomerId
from core.vault import generate_key
from evals.fake_llm import FOREIGN_PII, FakeLlm
from evals.pii_canaries import KINDS, NER_KINDS, Canary, Conversation, generate_conversations

__all__ = [
    "ChatService",
    "Finding",
    "LeakReport",
    "ServiceFactory",
    "generate_conversations",
    "main",
    "print_report",
    "run_leak_test",
]

_PLACEHOLDER: Final = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
_MASKED: Final = re.compile(r"<[A-Z][A-Z0-9_]*>")
_JOINED_DIGITS: Final = re.compile(r"(?<=\d)[ \-]+(?=\d)")
_GATEWAY_WARNING: Final = "reached the LLM boundary unredacted"
_CONTEXT_CHARS: Final = 60
_REPLY_COUNTS: Final = ("llm", "restored", "unrestored_placeholders", "masked", "foreign_pii_shown")
_CONTACT_FILES: Final = ("kefu.db",)
"""Where the CRM lives: a contact detail the customer asked to save is expected there (and in its WAL)."""


class ChatTurn(Protocol):
    """What the leak test reads from one turn (``serving.service.TurnResult``)."""

    @property
    def reply(self) -> str:
        """The text shown to the customer, placeholders restored."""
        ...

    @property
    def route(self) -> str:
        """``llm`` or ``rules``."""
        ...


class ChatService(Protocol):
    """What the leak test drives: ``serving.service.KefuService``.

    ``evals`` and ``serving`` are sibling layers that do not import each other, so the caller
    passes a factory (``lambda settings: KefuService.start(settings, use_llm=True)``).
    """

    @property
    def store(self) -> SupportStore:
        """The shop's systems, to see which contact details the customer had saved."""
        ...

    def chat(self, conversation_id: str, customer_id: str, text: str) -> ChatTurn:
        """Run one customer message through the graph."""
        ...

    def close(self) -> None:
        """Stop whatever the service started."""
        ...


ServiceFactory = Callable[[Settings], ChatService]
"""Starts the service on the settings the leak test chose (fake LLM endpoint, fresh data directory)."""


@dataclass(frozen=True)
class Finding:
    """A canary found where it must not be."""

    kind: str
    value: str
    conversation: str
    where: str
    """``request 12 messages[2].content (user)``, a file of the data directory, or ``logger NAME``."""
    context: str
    """The text around the find (lower-cased)."""


@dataclass
class LeakReport:
    """What the leak test tried and found."""

    conversations: int
    turns: int
    canaries: dict[str, int]
    """Canaries tried, per kind."""
    llm_requests: int
    llm_answers: dict[str, int]
    """What the fake answered: ``choose``, ``reply``, ``tool_call``, ``foreign_pii``."""
    leaked_to_llm: dict[str, int] = field(default_factory=dict)
    """Canaries found in at least one request to the LLM endpoint, per kind."""
    stored: dict[str, dict[str, int]] = field(default_factory=dict)
    """File of the data directory → kind → canaries found in it (contact details saved on request left out)."""
    saved_as_contact: dict[str, int] = field(default_factory=dict)
    """Canaries the customer asked to save as their phone or e-mail, which the CRM then held, per kind."""
    logged: dict[str, dict[str, int]] = field(default_factory=dict)
    """Logger → kind → canaries found in its records."""
    log_records: int = 0
    replies: dict[str, int] = field(default_factory=dict)
    """``llm`` (replies the model wrote), ``restored`` (of those, showing the customer's own data
    back), ``unrestored_placeholders``, ``masked`` (with a bare ``<TYPE>`` mask) and
    ``foreign_pii_shown`` (data the fake invented that reached a customer: must be 0)."""
    gateway_masked: dict[str, int] = field(default_factory=dict)
    """Kinds the LLM gateway masked in outgoing messages (data a node failed to redact), per warning."""
    seconds: float = 0.0
    llm_examples: list[Finding] = field(default_factory=list)
    stored_examples: list[Finding] = field(default_factory=list)
    log_examples: list[Finding] = field(default_factory=list)

    @property
    def stored_kinds(self) -> dict[str, int]:
        """Canaries found in the data directory per kind (a canary in two files counts twice)."""
        return _sum(self.stored.values())

    @property
    def logged_kinds(self) -> dict[str, int]:
        """Canaries found in log records per kind (a canary two loggers wrote counts twice)."""
        return _sum(self.logged.values())

    @property
    def regex_leaks(self) -> int:
        """Canaries of the kinds a pattern describes that reached the LLM."""
        return sum(n for kind, n in self.leaked_to_llm.items() if kind not in NER_KINDS)

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            **asdict(self),
            "regex_leaks": self.regex_leaks,
            "total_canaries": sum(self.canaries.values()),
            "stored_kinds": self.stored_kinds,
            "logged_kinds": self.logged_kinds,
        }


class _Matcher:
    """Finds the needles of many canaries in one pass over a text (a regular expression shaped like a trie)."""

    def __init__(self, canaries: Iterable[Canary]) -> None:
        self.by_needle: dict[str, list[Canary]] = {}
        self.by_digits: dict[str, list[Canary]] = {}
        for canary in canaries:
            for needle in canary.needles:
                self.by_needle.setdefault(needle, []).append(canary)
            if len(canary.digits) >= 7:
                self.by_digits.setdefault(canary.digits, []).append(canary)
        self._text = _trie_pattern(self.by_needle)
        self._digits = _trie_pattern(self.by_digits)

    def scan(self, text: str) -> dict[Canary, tuple[str, str]]:
        """Every canary in ``text``, with the form found and the text around its first occurrence.

        A find inside a longer find of another canary is that canary's: "10 Kingfisher Way" in
        "1610 Kingfisher Way" is not a second address.
        """
        found: dict[Canary, tuple[str, str]] = {}
        lowered = text.lower()
        for table, pattern, haystack in (
            (self.by_needle, self._text, lowered),
            (self.by_digits, self._digits, _JOINED_DIGITS.sub("", lowered) if self.by_digits else ""),
        ):
            if pattern is None:
                continue
            spans = [(m.start(), m.start() + len(m.group(1)), m.group(1)) for m in pattern.finditer(haystack)]
            for start, end, needle in spans:
                owners = table[needle]
                if any(
                    s <= start and end <= e and e - s > end - start and not set(table[other]) & set(owners)
                    for s, e, other in spans
                ):
                    continue
                for canary in owners:
                    if canary not in found:
                        found[canary] = needle, haystack[max(0, start - _CONTEXT_CHARS) : end + _CONTEXT_CHARS]
        return found


def _trie_pattern(words: Iterable[str]) -> re.Pattern[str] | None:
    """A pattern matching any of ``words`` at every position, overlaps included; None for no words."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    if not trie:
        return None

    def build(node: dict[str, Any]) -> str:
        branches = [re.escape(char) + build(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body

    return re.compile(f"(?=({build(trie)}))")


def _locate(value: Any, needle: str, path: str = "") -> str:
    """The JSON path of the first string in a request body that holds ``needle``."""
    if isinstance(value, str):
        text = value.lower()
        return path if needle in text or needle in _JOINED_DIGITS.sub("", text) else ""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _locate(item, needle, f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]")
        if found:
            role = item.get("role") if isinstance(item, dict) else None
            return f"{found} ({role})" if role else found
    return ""


class _LogScanner(logging.Handler):
    """Scans every record emitted while it is installed; keeps only what it finds."""

    def __init__(self, matcher: _Matcher) -> None:
        super().__init__(logging.DEBUG)
        self.matcher = matcher
        self.records = 0
        self.found: dict[tuple[Canary, str], Finding] = {}
        self.gateway: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record whose arguments do not format is still scanned, raw
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f"\n{record.exc_info[1]!r}"
        self.records += 1
        if _GATEWAY_WARNING in text:
            self.gateway.update(re.findall(r"'([A-Z_]+)'", text))
        for canary, (_needle, context) in self.matcher.scan(text).items():
            finding = Finding(canary.kind, canary.value, "", f"logger {record.name}", context)
            self.found.setdefault((canary, record.name), finding)


def run_leak_test(
    conversations: Sequence[Conversation],
    service_factory: ServiceFactory,
    *,
    data_dir: Path | None = None,
    settings: Settings | None = None,
    examples: int = 5,
    progress: Callable[[int, int], None] | None = None,
) -> LeakReport:
    """Chat ``conversations`` through Kefu against a recording fake LLM and count the canaries that got out.

    Args:
        conversations: From ``generate_conversations``.
        service_factory: Starts Kefu on the given settings, e.g.
            ``lambda settings: KefuService.start(settings, use_llm=True)``.
        data_dir: Kefu's data directory, empty or absent, kept afterwards; default: a temporary one.
        settings: Settings to start from (a throw-away vault key is added if they have none); the
            data directory and the LLM endpoint are always replaced.
        examples: How many findings to keep per kind and place.
        progress: Called with (conversations done, total) after each conversation.

    Returns:
        The counts and examples.

    Raises:
        ValueError: If ``data_dir`` is not empty.

    """
    if data_dir is not None and data_dir.exists() and any(data_dir.iterdir()):
        raise ValueError(f"{data_dir} is not empty; the stored-data scan needs a fresh directory")
    with tempfile.TemporaryDirectory(prefix="kefu-leak-") as tmp:
        return _run(conversations, service_factory, data_dir or Path(tmp), settings, examples, progress)


def _run(
    conversations: Sequence[Conversation],
    service_factory: ServiceFactory,
    data_dir: Path,
    base: Settings | None,
    examples: int,
    progress: Callable[[int, int], None] | None,
) -> LeakReport:
    started = time.perf_counter()
    owner = {canary: conversation.id for conversation in conversations for canary in conversation.canaries}
    matcher = _Matcher(owner)
    scanner = _LogScanner(matcher)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(scanner)
    root.setLevel(logging.DEBUG)
    firsts: list[int] = []  # index of each conversation's first LLM request
    replies: Counter[str] = Counter()
    saved: set[Canary] = set()
    turns = 0
    try:
        with FakeLlm() as fake:
            settings = _settings(base, data_dir, fake)
            service = service_factory(settings)
            try:
                for done, conversation in enumerate(conversations, start=1):
                    firsts.append(len(fake.requests))
                    for text in conversation.turns:
                        result = service.chat(f"leak-{conversation.id}", conversation.customer_id, text)
                        turns += 1
                        _check_reply(result.reply, result.route, conversation, replies)
                        saved |= _saved_contacts(service, conversation)
                    if progress is not None:
                        progress(done, len(conversations))
            finally:
                service.close()
            requests, answers = fake.requests, fake.counts
    finally:
        root.removeHandler(scanner)
        root.setLevel(old_level)

    report = LeakReport(
        conversations=len(conversations),
        turns=turns,
        canaries=_by_kind(owner),
        llm_requests=len(requests),
        llm_answers=answers,
        log_records=scanner.records,
        replies={key: replies[key] for key in _REPLY_COUNTS},
        gateway_masked=dict(sorted(scanner.gateway.items())),
    )
    leaked: dict[Canary, Finding] = {}
    for index, request in enumerate(requests):
        for canary, (needle, context) in matcher.scan(json.dumps(request.body, ensure_ascii=False)).items():
            running = bisect.bisect_right(firsts, index) - 1
            during = conversations[running].id if running >= 0 else "start-up"
            where = f"request {index} {request.path}{_locate(request.body, needle)}"
            if during != owner[canary]:
                where += f" (while {during} ran)"
            leaked.setdefault(canary, Finding(canary.kind, canary.value, owner[canary], where, context))
    report.leaked_to_llm = _by_kind(leaked)
    report.llm_examples = _examples(leaked.values(), examples)
    for logger in sorted({name for _canary, name in scanner.found}):
        report.logged[logger] = _by_kind(canary for canary, name in scanner.found if name == logger)
    logged = [_owned(finding, owner[canary]) for (canary, _name), finding in scanner.found.items()]
    report.log_examples = _examples(logged, examples)
    stored: list[Finding] = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        name = path.relative_to(data_dir).as_posix()
        found = matcher.scan(path.read_bytes().decode("utf-8", errors="ignore"))
        contact = name.startswith(_CONTACT_FILES)
        kept = {canary: context for canary, (_needle, context) in found.items() if not (contact and canary in saved)}
        if kept:
            report.stored[name] = _by_kind(kept)
            stored += [Finding(c.kind, c.value, owner[c], name, context) for c, context in kept.items()]
    report.saved_as_contact = _by_kind(saved)
    report.stored_examples = _examples(stored, examples)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def _settings(base: Settings | None, data_dir: Path, fake: FakeLlm) -> Settings:
    settings = base or Settings(_env_file=None)
    update: dict[str, Any] = {
        "llm_backend": "openai",
        "llm_base_url": fake.base_url,
        "llm_model": fake.model,
        "data_dir": data_dir,
    }
    if settings.vault_key is None and settings.vault_key_file is None:
        update["vault_key"] = SecretStr(generate_key())  # a throw-away vault for a throw-away store
    return settings.model_copy(update=update)


def _check_reply(reply: str, route: str, conversation: Conversation, counts: Counter[str]) -> None:
    counts["llm"] += route == "llm"
    counts["restored"] += route == "llm" and any(c.value in reply for c in conversation.canaries)
    counts["unrestored_placeholders"] += bool(_PLACEHOLDER.search(reply))
    counts["masked"] += bool(_MASKED.search(reply))
    counts["foreign_pii_shown"] += any(value in reply for value in FOREIGN_PII)


def _saved_contacts(service: ChatService, conversation: Conversation) -> set[Canary]:
    """The conversation's canaries that are now the customer's phone or e-mail in the CRM."""
    customer = service.store.get_customer(CustomerId(conversation.customer_id))
    if customer is None:
        return set()
    held = {customer.email.lower(), customer.phone, re.sub(r"\D", "", customer.phone)}
    return {c for c in conversation.canaries if c.value.lower() in held or (c.digits and c.digits in held)}


def _owned(finding: Finding, conversation: str) -> Finding:
    return Finding(finding.kind, finding.value, conversation, finding.where, finding.context)


def _sum(tables: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for table in tables:
        total.update(table)
    return dict(sorted(total.items()))


def _by_kind(canaries: Iterable[Canary]) -> dict[str, int]:
    return dict(sorted(Counter(canary.kind for canary in canaries).items()))


def _examples(findings: Iterable[Finding], per: int) -> list[Finding]:
    """At most ``per`` findings per kind and place (file, logger or request path)."""
    kept: Counter[tuple[str, str]] = Counter()
    out = []
    for finding in findings:
        place = finding.where if not finding.where.startswith("request") else finding.where.split(" ", 2)[-1]
        if kept[finding.kind, place] < per:
            kept[finding.kind, place] += 1
            out.append(finding)
    return out


def print_report(report: LeakReport) -> None:
    """Print the per-kind table and the examples."""
    answers = ", ".join(f"{kind} {n}" for kind, n in sorted(report.llm_answers.items()))
    print(
        f"{report.conversations} conversations, {report.turns} turns, {report.llm_requests} LLM requests "
        f"({answers}), {report.log_records} log records, {report.seconds:.0f} s"
    )
    print(f"{'kind':<18}{'tried':>7}{'to LLM':>8}{'stored':>8}{'logged':>8}{'contact':>9}")
    columns = (report.canaries, report.leaked_to_llm, report.stored_kinds, report.logged_kinds, report.saved_as_contact)
    for kind in KINDS:
        cells = "".join(
            f"{column.get(kind, 0):>{width}}" for column, width in zip(columns, (7, 8, 8, 8, 9), strict=True)
        )
        print(f"{kind:<18}{cells}{'  (named entities)' if kind in NER_KINDS else ''}")
    totals = "".join(f"{sum(column.values()):>{width}}" for column, width in zip(columns, (7, 8, 8, 8, 9), strict=True))
    print(f"{'total':<18}{totals}")
    print(f"canaries of the pattern kinds that reached the LLM: {report.regex_leaks}")
    print(f"stored, by file: {json.dumps(report.stored) if report.stored else 'nothing'}")
    print(f"logged, by logger: {json.dumps(report.logged) if report.logged else 'nothing'}")
    print(f"replies: {report.replies}; the LLM gateway masked {report.gateway_masked or 'nothing'}")
    for title, findings in (
        ("LLM", report.llm_examples),
        ("stored", report.stored_examples),
        ("log", report.log_examples),
    ):
        for finding in findings:
            print(f"  [{title}] {finding.kind} {finding.value!r} ({finding.conversation}) at {finding.where}")
            print(f"      …{finding.context!r}…")


def main(argv: Sequence[str] | None = None, *, service_factory: ServiceFactory) -> int:
    """Run the leak test, print the table, write JSON; 1 if a canary of a pattern kind reached the LLM.

    Args:
        argv: Command-line arguments (``--help`` lists them).
        service_factory: Starts Kefu, e.g. ``lambda settings: KefuService.start(settings, use_llm=True)``.

    Returns:
        The exit status.

    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=600, help="how many (half zh, half en)")
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--out", type=Path, default=Path("evals/results/pii_leak.json"))
    parser.add_argument("--data-dir", type=Path, default=None, help="keep Kefu's data here (must be empty)")
    parser.add_argument("--intent-models", type=Path, default=None, help="intent model root (default: train one)")
    args = parser.parse_args(argv)

    conversations = generate_conversations(args.conversations, args.seed)
    settings = Settings(_env_file=None, intent_model_dir=args.intent_models)
    last = time.perf_counter()

    def progress(done: int, total: int) -> None:
        nonlocal last
        if time.perf_counter() - last > 30 or done == total:
            print(f"  {done}/{total} conversations", flush=True)
            last = time.perf_counter()

    report = run_leak_test(conversations, service_factory, data_dir=args.data_dir, settings=settings, progress=progress)
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if report.regex_leaks else 0


if __name__ == "__main__":
    # Run as a script, the eval starts Kefu the way `kefu serve` does. The module is looked up at
    # run time, as evals/e2e_latency.py starts `serving.cli` in a subprocess: evals and serving
    # are sibling layers, and neither imports the other.
    _service = importlib.import_module("serving.service")
    raise SystemExit(main(service_factory=lambda settings: _service.KefuService.start(settings, use_llm=True)))
