"""``kefu bench``: what Kefu costs per turn, side by side with a LangGraph ReAct agent, and with a real model.

Three parts, each printing a table; all write one JSON file (``--out``) that ``kefu report`` reads.

- **overhead** (always on the instant fake endpoint, ``evals.fake_llm.FakeLlm``): ``kefu serve`` as
  its own process, and for each ``--concurrency`` level that many customers chatting at once over
  ``POST /v1/chat``, each ``--turns`` messages, on two paths: greetings, thanks and goodbyes the
  classifier settles without the model (the *rules* path; the share that really stayed there is
  reported) and order and product questions (the *llm* path). The fake answers at once, so the
  latency is what Kefu itself costs: HTTP, graph, classifier, redaction, tools, guards, database,
  and under load the wait for a worker. The ReAct baseline (``evals.react_baseline``) runs the same
  conversations in-process, on the same fake, at ``--baseline-concurrency``: it has no HTTP in front,
  so its numbers are, if anything, flattering.
- **side-by-side**: Kefu (over HTTP) and the baseline (in-process) on the same endpoint, each behind
  its own recording proxy (``evals.llm_proxy``), so LLM calls and tokens are counted identically, at
  the endpoint, run through the same scenarios (``evals.scenario_runner``, states and routes not
  checked for either, so the checks are the same); per turn: LLM calls, prompt and completion
  tokens, p50/p90 latency, and the pass rate (pass^1), with the ratios baseline ÷ Kefu. On the fake
  endpoint the pass rate says nothing about quality (it is labelled so); calls and tokens are real.
- **real**: Kefu with a real model over the scenario mix: turn latency and time to first token as
  a customer sees it (from sending ``POST /v1/conversations/{id}/messages`` with ``Accept:
  text/event-stream`` to its first ``token`` event), and the model's own time per call from the proxy.

The endpoint of the last two parts is the embedded model (``--model``, started with ``kefu models
serve``), any OpenAI-compatible URL (``--llm-url``), or the fake (``--fake-llm``).

    kefu bench --part overhead
    kefu bench --part side-by-side --model qwen2.5-coder-0.5b --limit 10 --k 1
    kefu bench --part real --limit 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
from rich.console import Console
from rich.table import Table

from evals.fake_llm import FakeLlm
from evals.harness import KefuServer, LlmServerProcess, machine, percentiles
from evals.llm_proxy import LlmCall, LlmProxy
from evals.react_baseline import DEFAULT_MAX_STEPS, ReactTarget
from evals.targets import Target, TurnObservation

__all__ = [
    "PATH_TEXTS",
    "Endpoint",
    "LevelResult",
    "MeteredTarget",
    "build_parser",
    "main",
    "overhead_json",
    "real_turns",
    "run_baseline_level",
    "run_kefu_level",
    "side_by_side_json",
    "summarize_target",
]

PATH_TEXTS: Final[dict[str, dict[str, tuple[str, ...]]]] = {
    "rules": {"en": ("Hi there", "Thanks!", "Goodbye"), "zh": ("你好", "谢谢", "再见")},
    "llm": {
        "en": ("Where is my order?", "Do you ship to Hong Kong?", "Tell me about the headphones"),
        "zh": ("我的订单到哪了？", "退货运费谁出？", "介绍一下你们的耳机"),
    },
}
"""What the customers of each overhead path say, turn after turn (cycled), by language."""

CUSTOMERS: Final = tuple(f"C{n:04d}" for n in range(1, 11))
"""Seeded demo customers the overhead conversations are spread over."""


# ------------------------------------------------------------------------------------- overhead


@dataclass
class LevelResult:
    """One path at one concurrency level: every turn's latency and what the target said it did."""

    target: str
    path: str
    concurrency: int
    seconds: float = 0.0
    """Wall time from the first message to the last reply of the level."""
    latencies_ms: list[float] = field(default_factory=list)
    routes: list[str] = field(default_factory=list)
    llm_calls: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, observation: TurnObservation) -> None:
        """Record one turn (a failed turn counts as an error, not as a latency)."""
        if observation.error:
            self.errors.append(observation.error)
            return
        self.latencies_ms.append(observation.latency_ms)
        self.routes.append(observation.route or "")
        self.llm_calls.append(observation.llm_calls)

    def to_json(self) -> dict[str, Any]:
        """The level as ``kefu report`` reads it."""
        turns = len(self.latencies_ms)
        return {
            "target": self.target,
            "path": self.path,
            "concurrency": self.concurrency,
            "turns": turns,
            "turns_per_s": round(turns / self.seconds, 2) if self.seconds else None,
            "latency_ms": percentiles(self.latencies_ms),
            "rules_share": round(self.routes.count("rules") / turns, 3) if turns else None,
            "llm_calls_per_turn": round(sum(self.llm_calls) / turns, 3) if turns else None,
            "errors": len(self.errors),
            "error_samples": sorted(set(self.errors))[:3],
        }


def _conversation(path: str, index: int) -> tuple[str, str, list[str]]:
    """Conversation id, customer and language texts of the ``index``-th client of a level."""
    lang = "en" if index % 2 == 0 else "zh"
    return (
        f"bench-{path}-{index}-{uuid.uuid4().hex[:8]}",
        CUSTOMERS[index % len(CUSTOMERS)],
        list(PATH_TEXTS[path][lang]),
    )


def _observe_chat(body: dict[str, Any], latency_ms: float) -> TurnObservation:
    return TurnObservation(
        reply=str(body.get("reply", "")),
        tools=list(body.get("tools", [])),
        state=body.get("state"),
        route=body.get("route"),
        llm_calls=int(body.get("llm_calls", 0)),
        latency_ms=latency_ms,
    )


async def _chat_client(
    client: httpx.AsyncClient, path: str, index: int, turns: int, result: LevelResult, start: asyncio.Event
) -> None:
    conversation_id, customer, texts = _conversation(path, index)
    await start.wait()
    for n in range(turns):
        payload = {"conversation_id": conversation_id, "customer_id": customer, "text": texts[n % len(texts)]}
        started = time.perf_counter()
        try:
            response = await client.post("/v1/chat", json=payload)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            result.add(TurnObservation(reply="", error=f"{type(exc).__name__}: {exc}"))
            return
        result.add(_observe_chat(response.json(), (time.perf_counter() - started) * 1000))


async def run_kefu_level(
    base_url: str, headers: dict[str, str], path: str, concurrency: int, turns: int
) -> LevelResult:
    """``concurrency`` customers of ``path`` chat at once over ``POST /v1/chat``, ``turns`` messages each."""
    result = LevelResult("kefu", path, concurrency)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=900, limits=limits) as client:
        start = asyncio.Event()
        tasks = [
            asyncio.create_task(_chat_client(client, path, index, turns, result, start)) for index in range(concurrency)
        ]
        began = time.perf_counter()
        start.set()
        await asyncio.gather(*tasks)
        result.seconds = time.perf_counter() - began
    return result


def run_baseline_level(target: Target, path: str, concurrency: int, turns: int) -> LevelResult:
    """The same conversations as ``run_kefu_level`` against an in-process target, one thread per customer."""
    result = LevelResult(target.name, path, concurrency)

    def converse(index: int) -> None:
        conversation_id, customer, texts = _conversation(path, index)
        for n in range(turns):
            observation = target.turn(conversation_id, customer, texts[n % len(texts)])
            result.add(observation)
            if observation.error:
                return

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(converse, range(concurrency)))
    result.seconds = time.perf_counter() - began
    return result


def overhead_json(kefu: Sequence[LevelResult], baseline: Sequence[LevelResult]) -> dict[str, Any]:
    """The ``overhead`` part of the results file."""
    return {
        "endpoint": "fake (instant, evals.fake_llm)",
        "note": "Kefu measured over HTTP (kefu serve, POST /v1/chat); the ReAct baseline in-process, without HTTP.",
        "levels": [level.to_json() for level in kefu],
        "baseline": [level.to_json() for level in baseline],
    }


def _overhead_table(console: Console, levels: Sequence[LevelResult]) -> None:
    table = Table(title="Framework overhead: instant fake LLM (Kefu over HTTP, baseline in-process)")
    for column in ("target", "path", "concurrent", "turns", "turns/s", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(column, justify="left" if column in ("target", "path") else "right")
    for column in ("rules share", "LLM calls/turn", "errors"):
        table.add_column(column, justify="right")
    for level in levels:
        row = level.to_json()
        latency = row["latency_ms"]
        table.add_row(
            level.target,
            level.path,
            str(level.concurrency),
            str(row["turns"]),
            _fmt(row["turns_per_s"]),
            *(_fmt(latency[key]) for key in ("p50", "p90", "p99")),
            _fmt(row["rules_share"]),
            _fmt(row["llm_calls_per_turn"]),
            str(row["errors"]),
        )
    console.print(table)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def run_overhead_part(
    console: Console, work: Path, levels: Sequence[int], baseline_levels: Sequence[int], turns: int, max_steps: int
) -> dict[str, Any]:
    """Start the fake, ``kefu serve`` and the in-process baseline; measure every level of both paths."""
    kefu: list[LevelResult] = []
    baseline: list[LevelResult] = []
    with FakeLlm() as fake:
        console.print("starting `kefu serve` on the fake endpoint (first start builds the knowledge base)…")
        with KefuServer(work / "overhead-kefu", llm_base_url=fake.base_url) as server:
            for path in PATH_TEXTS:  # warm-up: first turns load models and fill caches
                asyncio.run(run_kefu_level(server.base_url, server.headers, path, 2, 2))
            for path in PATH_TEXTS:
                for level in levels:
                    kefu.append(asyncio.run(run_kefu_level(server.base_url, server.headers, path, level, turns)))
                    console.print(f"kefu {path} ×{level}: {kefu[-1].to_json()['turns_per_s']} turns/s")
        if baseline_levels:
            console.print("building the ReAct baseline in-process…")
            target = ReactTarget.open(work / "overhead-react", llm_base_url=fake.base_url, max_steps=max_steps)
            try:
                for path in PATH_TEXTS:
                    run_baseline_level(target, path, 1, 2)
                    for level in baseline_levels:
                        baseline.append(run_baseline_level(target, path, level, turns))
            finally:
                target.close()
    _overhead_table(console, [*kefu, *baseline])
    console.print("Kefu is measured over HTTP; the baseline in-process (no HTTP, no server). Fake LLM latency: 0.")
    return overhead_json(kefu, baseline)


# ---------------------------------------------------------------------------- side by side


@dataclass(frozen=True)
class Metered:
    """One turn as the target reported it and as the endpoint saw it."""

    observation: TurnObservation
    calls: list[LlmCall]


class MeteredTarget:
    """A target whose every turn is paired with the LLM calls its proxy saw during that turn.

    Turns must run one at a time (the scenario runner does): calls are attributed by time.
    """

    def __init__(self, target: Target, proxy: LlmProxy) -> None:
        """Wrap ``target``, whose LLM endpoint is ``proxy``."""
        self.target = target
        self.proxy = proxy
        self.name = target.name
        self.database_url = target.database_url
        self.turns: list[Metered] = []

    def turn(self, conversation_id: str, customer_id: str, text: str) -> TurnObservation:
        """Run the turn and keep it with the calls the proxy recorded meanwhile."""
        mark = self.proxy.mark()
        observation = self.target.turn(conversation_id, customer_id, text)
        self.turns.append(Metered(observation, self.proxy.since(mark)))
        return observation

    def close(self) -> None:
        """Close the wrapped target."""
        self.target.close()


def _per_turn(total: float, turns: int, digits: int = 2) -> float | None:
    return round(total / turns, digits) if turns else None


def summarize_target(turns: Sequence[Metered], pass_rate: float | None, scenarios: int) -> dict[str, Any]:
    """Per-turn means and latency percentiles of one target, counted at the endpoint."""
    done = [t for t in turns if not t.observation.error]
    latencies = [round(t.observation.latency_ms, 1) for t in done]
    latency = percentiles(latencies)
    calls = [c for t in done for c in t.calls]
    return {
        "scenarios": scenarios,
        "turns": len(done),
        "errors": len(turns) - len(done),
        "llm_calls_per_turn": _per_turn(len(calls), len(done)),
        "reported_llm_calls_per_turn": _per_turn(sum(t.observation.llm_calls for t in done), len(done)),
        "prompt_tokens_per_turn": _per_turn(sum(c.prompt_tokens for c in calls), len(done), 1),
        "completion_tokens_per_turn": _per_turn(sum(c.completion_tokens for c in calls), len(done), 1),
        "llm_seconds_per_turn": _per_turn(sum(c.seconds for c in calls), len(done), 3),
        "latency_p50_ms": latency["p50"],
        "latency_p90_ms": latency["p90"],
        "latency_p99_ms": latency["p99"],
        "pass_rate": pass_rate,
        "latencies": latencies,
    }


RATIO_KEYS: Final = (
    "llm_calls_per_turn",
    "prompt_tokens_per_turn",
    "completion_tokens_per_turn",
    "latency_p50_ms",
    "latency_p90_ms",
    "pass_rate",
)


def side_by_side_json(
    kefu: dict[str, Any], baseline: dict[str, Any], *, endpoint: str, llm: str, scenarios: int, k: int
) -> dict[str, Any]:
    """The ``side_by_side`` part: both targets and the ratios baseline ÷ Kefu."""
    ratios = {
        key: round(baseline[key] / kefu[key], 2) if kefu.get(key) and baseline.get(key) is not None else None
        for key in RATIO_KEYS
    }
    note = "Same scenarios, same endpoint, each target behind its own recording proxy; states and routes not checked."
    if llm == "fake":
        note += " The fake endpoint ignores what it is asked, so the pass rate says nothing about quality."
    return {
        "endpoint": endpoint,
        "llm": llm,
        "scenarios": scenarios,
        "k": k,
        "targets": {"kefu": kefu, "react-baseline": baseline},
        "ratios": ratios,
        "note": note,
    }


def _side_table(console: Console, data: dict[str, Any]) -> None:
    kefu, react = data["targets"]["kefu"], data["targets"]["react-baseline"]
    table = Table(title=f"Side by side on {data['endpoint']}: {data['scenarios']} scenarios × {data['k']}")
    for column in ("per turn", "Kefu", "ReAct baseline", "baseline ÷ Kefu"):
        table.add_column(column, justify="left" if column == "per turn" else "right")
    labels = {
        "llm_calls_per_turn": "LLM calls (at the endpoint)",
        "prompt_tokens_per_turn": "prompt tokens",
        "completion_tokens_per_turn": "completion tokens",
        "latency_p50_ms": "latency p50 ms",
        "latency_p90_ms": "latency p90 ms",
        "pass_rate": "pass rate (pass^1)" + (" — meaningless on the fake" if data["llm"] == "fake" else ""),
    }
    for key, label in labels.items():
        ratio = data["ratios"].get(key)
        table.add_row(label, _fmt(kefu.get(key), 2), _fmt(react.get(key), 2), "–" if ratio is None else f"{ratio}×")
    table.add_row("turns (errors)", f"{kefu['turns']} ({kefu['errors']})", f"{react['turns']} ({react['errors']})", "")
    console.print(table)
    console.print(data["note"])


# ------------------------------------------------------------------------------------- endpoint


@dataclass(frozen=True)
class Endpoint:
    """The OpenAI-compatible endpoint of the side-by-side and real parts."""

    url: str
    llm: str
    """``fake``, ``embedded`` or ``url``."""
    label: str
    model: str


@contextlib.contextmanager
def open_endpoint(args: argparse.Namespace) -> Iterator[Endpoint]:
    """The fake, an external URL, or the embedded model started with ``kefu models serve``."""
    if args.fake_llm:
        with FakeLlm() as fake:
            yield Endpoint(fake.base_url, "fake", "fake (evals.fake_llm)", "fake")
    elif args.llm_url:
        yield Endpoint(args.llm_url, "url", args.llm_url, args.served_model or "(the endpoint's)")
    else:
        with LlmServerProcess(args.model) as llm:
            yield Endpoint(llm.base_url, "embedded", f"embedded {args.model}", args.model)


def _served_model(args: argparse.Namespace) -> dict[str, str]:
    return {"KEFU_LLM_MODEL": args.served_model} if args.served_model else {}


def run_side_by_side_part(console: Console, work: Path, endpoint: Endpoint, args: argparse.Namespace) -> dict[str, Any]:
    """Both targets through the scenario suite on ``endpoint``, each behind its own proxy."""
    from evals.scenario_runner import CheckOptions, KefuTarget, load_scenarios, run_suite, select_scenarios

    scenarios = select_scenarios(load_scenarios(sorted(Path(args.scenarios).glob("*.yaml"))), [], args.limit)
    options = CheckOptions(check_states=False, check_routes=False)
    summaries: dict[str, dict[str, Any]] = {}
    with LlmProxy(endpoint.url) as proxy:
        console.print(f"starting `kefu serve` on {endpoint.label} through a recording proxy…")
        with KefuServer(work / "side-kefu", llm_base_url=proxy.base_url, extra_env=_served_model(args)) as server:
            kefu = MeteredTarget(KefuTarget(server), proxy)
            try:
                suite = run_suite(kefu, scenarios, args.k, options=options)
            finally:
                kefu.close()
        summaries["kefu"] = summarize_target(kefu.turns, suite.pass_hat()["1"], len(scenarios))
    with LlmProxy(endpoint.url) as proxy:
        console.print("building the ReAct baseline…")
        overrides = {"llm_model": args.served_model} if args.served_model else {}
        react_target = ReactTarget.open(
            work / "side-react", llm_base_url=proxy.base_url, max_steps=args.max_steps, **overrides
        )
        for lang_text in ("hi", "你好"):  # as Kefu's start-up warm-up: the prompt prefix gets cached
            react_target.turn(f"warm-{uuid.uuid4().hex[:8]}", "C0001", lang_text)
        react = MeteredTarget(react_target, proxy)
        try:
            suite = run_suite(react, scenarios, args.k, options=options)
        finally:
            react.close()
        summaries["react-baseline"] = summarize_target(react.turns, suite.pass_hat()["1"], len(scenarios))
    data = side_by_side_json(
        summaries["kefu"],
        summaries["react-baseline"],
        endpoint=endpoint.label,
        llm=endpoint.llm,
        scenarios=len(scenarios),
        k=args.k,
    )
    _side_table(console, data)
    return {**data, "model": endpoint.model}


# ------------------------------------------------------------------------------------------ real


async def stream_turn(
    client: httpx.AsyncClient, token: str, conversation_id: str, text: str
) -> tuple[float, float | None, dict[str, Any]]:
    """One SSE turn as a customer's app sends it: (latency ms, first ``token`` event ms, the ``reply`` event)."""
    started = time.perf_counter()
    first: float | None = None
    reply: dict[str, Any] = {}
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    url = f"/v1/conversations/{conversation_id}/messages"
    async with client.stream("POST", url, json={"text": text}, headers=headers) as response:
        response.raise_for_status()
        event = ""
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "token" and first is None:
                    first = (time.perf_counter() - started) * 1000
            elif line.startswith("data:") and event in ("reply", "error"):
                reply = json.loads(line.removeprefix("data:").strip())
    if reply.get("type") == "error":
        raise RuntimeError(f"the stream ended with an error: {reply}")
    return (time.perf_counter() - started) * 1000, first, reply


async def real_turns(
    base_url: str, headers: dict[str, str], proxy: LlmProxy, conversations: Sequence[tuple[str, list[str]]]
) -> dict[str, Any]:
    """Each ``(customer, texts)`` conversation streamed turn by turn with a session token from ``headers``' API key.

    Returns the ``real`` part's numbers; the model's calls are read from ``proxy``, the endpoint Kefu uses.
    """
    latencies: list[float] = []
    ttfts: list[float] = []
    llm_ttfts: list[float] = []
    llm_call_ms: list[float] = []
    errors: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=900) as client:
        for customer, texts in conversations:
            session = await client.post("/v1/sessions", json={"customer_id": customer}, headers=headers)
            session.raise_for_status()
            token, conversation_id = session.json()["token"], f"real-{uuid.uuid4().hex[:12]}"
            for text in texts:
                mark = proxy.mark()
                try:
                    latency, ttft, _reply = await stream_turn(client, token, conversation_id, text)
                except (httpx.HTTPError, RuntimeError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    break
                latencies.append(round(latency, 1))
                if ttft is not None:
                    ttfts.append(round(ttft, 1))
                calls = proxy.since(mark)
                llm_call_ms += [call.seconds * 1000 for call in calls]
                llm_ttfts += [call.ttft_s * 1000 for call in calls if call.ttft_s is not None]
    return {
        "turns": len(latencies),
        "errors": len(errors),
        "latency_ms": percentiles(latencies),
        "median_latency_ms": round(statistics.median(latencies), 1) if latencies else None,
        "ttft_ms": percentiles(ttfts),
        "llm_ttft_ms": percentiles(llm_ttfts),
        "llm_call_ms": percentiles(llm_call_ms),
        "llm_calls": len(llm_call_ms),
        "latencies": latencies,
        "note": "Kefu calls the model without streaming and streams the reply only after the guards; "
        "llm_ttft_ms is empty unless the model's calls are streamed, llm_call_ms is each whole call.",
    }


def run_real_part(console: Console, work: Path, endpoint: Endpoint, args: argparse.Namespace) -> dict[str, Any]:
    """Kefu with ``endpoint`` behind a proxy, over the scenario mix, streamed as a customer's app receives it."""
    from evals.scenario_runner import load_scenarios, select_scenarios

    scenarios = select_scenarios(load_scenarios(sorted(Path(args.scenarios).glob("*.yaml"))), [], args.limit)
    conversations = [(s.customer, [turn.user for turn in s.turns]) for s in scenarios]
    with LlmProxy(endpoint.url) as proxy:
        console.print(f"starting `kefu serve` on {endpoint.label} through a recording proxy…")
        with KefuServer(work / "real-kefu", llm_base_url=proxy.base_url, extra_env=_served_model(args)) as server:
            data = asyncio.run(real_turns(server.base_url, server.headers, proxy, conversations))
    table = Table(title=f"Kefu on {endpoint.label}: {data['turns']} turns of {len(scenarios)} scenarios")
    for column in ("ms", "p50", "p90", "p99"):
        table.add_column(column, justify="left" if column == "ms" else "right")
    for label, key in (("turn latency", "latency_ms"), ("first token at the customer", "ttft_ms")):
        table.add_row(label, *(_fmt(data[key][q]) for q in ("p50", "p90", "p99")))
    for label, key in (("first token from the LLM", "llm_ttft_ms"), ("one LLM call", "llm_call_ms")):
        table.add_row(label, *(_fmt(data[key][q]) for q in ("p50", "p90", "p99")))
    console.print(table)
    console.print(data["note"])
    return {**data, "endpoint": endpoint.label, "llm": endpoint.llm, "model": endpoint.model}


# ------------------------------------------------------------------------------------------ main


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {text!r}") from exc
    if any(level < 1 for level in levels):
        raise argparse.ArgumentTypeError("concurrency levels must be at least 1")
    return levels


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``kefu bench``."""
    parser = argparse.ArgumentParser(
        prog="kefu bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--part", choices=("overhead", "side-by-side", "real", "all"), default="all", help="which part to run"
    )
    parser.add_argument(
        "--concurrency",
        type=_levels,
        default=[1, 10, 50, 100, 200],
        help="overhead: concurrent conversations, e.g. 1,10,50",
    )
    parser.add_argument("--turns", type=int, default=3, help="overhead: messages per conversation")
    parser.add_argument(
        "--baseline-concurrency",
        type=_levels,
        default=[1, 10],
        help="overhead: concurrency levels for the in-process ReAct baseline (empty string: skip it)",
    )
    endpoint = parser.add_mutually_exclusive_group()
    endpoint.add_argument("--model", default="qwen2.5-coder-0.5b", help="side-by-side/real: embedded model to start")
    endpoint.add_argument("--llm-url", help="side-by-side/real: use this OpenAI-compatible base URL (…/v1) instead")
    endpoint.add_argument("--fake-llm", action="store_true", help="side-by-side/real: use the deterministic fake")
    parser.add_argument("--served-model", help="the model name to send to --llm-url (default: Kefu's setting)")
    parser.add_argument("--scenarios", default="evals/scenarios", help="side-by-side/real: directory of scenario YAML")
    parser.add_argument("--limit", type=int, help="side-by-side/real: run only the first N scenarios")
    parser.add_argument("--k", type=int, default=1, help="side-by-side: trials per scenario")
    parser.add_argument(
        "--max-steps", type=int, default=DEFAULT_MAX_STEPS, help="the baseline's recursion_limit per turn"
    )
    parser.add_argument("--out", type=Path, default=Path("evals/results/bench.json"), help="the results JSON file")
    return parser


def read_results(path: Path) -> dict[str, Any]:
    """An earlier results file's content, or nothing when there is none (or it is not a JSON object)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write the results file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen parts, print their tables and write ``--out`` after each part."""
    args = build_parser().parse_args(argv)
    console = Console(width=max(140, Console().width))
    wanted = ("overhead", "side-by-side", "real") if args.part == "all" else (args.part,)
    command = "kefu bench " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    # Parts not run this time keep their earlier results; each part records its own command and date.
    results = {**read_results(args.out), "suite": "bench", "machine": machine(), "date": date, "command": command}
    results.setdefault("model", None)
    steps: dict[str, Callable[[Path, Endpoint | None], dict[str, Any]]] = {
        "overhead": lambda work, _e: run_overhead_part(
            console, work, args.concurrency, args.baseline_concurrency, args.turns, args.max_steps
        ),
        "side-by-side": lambda work, e: run_side_by_side_part(console, work, _need(e), args),
        "real": lambda work, e: run_real_part(console, work, _need(e), args),
    }
    with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp, contextlib.ExitStack() as stack:
        endpoint = None
        for part in wanted:
            if part != "overhead" and endpoint is None:
                endpoint = stack.enter_context(open_endpoint(args))
                results["model"], results["llm"] = endpoint.model, endpoint.llm
            results[part.replace("-", "_")] = {**steps[part](Path(tmp), endpoint), "command": command, "date": date}
            write_results(args.out, results)
            console.print(f"wrote {args.out}")
    return 0


def _need(endpoint: Endpoint | None) -> Endpoint:
    if endpoint is None:
        raise RuntimeError("no endpoint was opened")
    return endpoint


if __name__ == "__main__":
    raise SystemExit(main())
