r"""Run τ² retail tasks against Kefu with a simulated customer and report pass^k.

Run:
    python -m evals.tau2 --db db.json --tasks tasks_dev.jsonl --policy policy.md \\
        --model qwen2.5-coder-0.5b --limit 3 --k 1 --out evals/results/tau2.json
    python -m evals.tau2 ... --agent-url http://gpu-box:8000/v1 --agent-model Qwen/Qwen2.5-7B-Instruct --k 4

Each trial reloads the τ² database into the agent's store, opens a conversation with τ²'s
greeting, and alternates simulated-customer and agent messages until the customer stops (or is
transferred) or ``--max-turns`` customer messages have been sent. ``--model`` starts the embedded
llama-server for the agent (and the simulator, unless ``--user-url`` is given); ``--agent-url``
uses any OpenAI-compatible endpoint instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from rich.console import Console
from rich.table import Table

from evals.harness import LlmServerProcess, machine
from evals.targets import pass_hat_k
from evals.tau2.agent import KefuTau2Agent, Tau2Agent
from evals.tau2.db import Record, dump_state, install, load_source, state_hash
from evals.tau2.score import Judge, Score, Tau2Task, load_tasks, reference_hash, score_trial
from evals.tau2.user import UserSimulator, is_stop

__all__ = ["GREETING", "SuiteResult", "TrialResult", "main", "run_suite", "run_trial"]

GREETING: Final = "Hi! How can I help you today?"
"""τ²'s fixed first agent message."""


@dataclass
class TrialResult:
    """One conversation of one task and how it scored."""

    task_id: str
    trial: int
    termination: str
    """``user_stop``, ``agent_transfer``, ``max_turns``, ``agent_error`` or ``user_error``."""
    score: Score
    turns: int
    transcript: list[dict[str, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0


@dataclass
class SuiteResult:
    """Every trial of every task."""

    tasks: list[Tau2Task]
    trials: dict[str, list[TrialResult]]
    k: int
    replay_errors: dict[str, list[str]]

    def successes(self, task_id: str) -> int:
        """How many trials of the task scored 1."""
        return sum(1 for t in self.trials[task_id] if t.score.reward == 1.0)

    def pass_hat(self) -> dict[str, float]:
        """pass^1 ... pass^k over the tasks."""
        counts = [self.successes(task.id) for task in self.tasks]
        return {str(n): round(pass_hat_k(counts, trials=self.k, k=n), 4) for n in range(1, self.k + 1)}

    def rate(self, component: str) -> float | None:
        """Share of trials passing ``component`` among those where it applies (None: it never applied)."""
        values = [
            getattr(t.score, component)
            for trials in self.trials.values()
            for t in trials
            if getattr(t.score, component) is not None
        ]
        return round(sum(values) / len(values), 4) if values else None


def run_trial(
    agent: Tau2Agent,
    user: UserSimulator,
    task: Tau2Task,
    source: Record,
    gold_hash: str,
    *,
    trial: int = 0,
    max_turns: int = 20,
    judge: Judge | None = None,
) -> TrialResult:
    """One conversation of ``task`` on a fresh copy of ``source``, scored."""
    started = time.perf_counter()
    install(agent.engine, source)
    conversation_id = f"tau2-{task.id.rsplit(':', 1)[-1]}-{trial}-{uuid.uuid4().hex[:8]}"
    customer = user.start(task.user_scenario)
    transcript = [{"role": "assistant", "content": GREETING}]
    agent_messages = [GREETING]
    tools: list[str] = []
    termination, error, turns = "max_turns", None, 0
    agent_message = GREETING
    while turns < max_turns:
        try:
            text = customer.next_message(agent_message)
        except Exception as exc:  # the simulator's endpoint failed: the trial cannot go on
            termination, error = "user_error", f"{type(exc).__name__}: {exc}"
            break
        turns += 1
        transcript.append({"role": "user", "content": text})
        if is_stop(text):
            termination = "user_stop"
            break
        try:
            answer = agent.respond(conversation_id, text)
        except Exception as exc:  # any agent failure ends the conversation, as in τ²
            termination, error = "agent_error", f"{type(exc).__name__}: {exc}"
            break
        tools += answer.tools
        agent_message = answer.reply
        agent_messages.append(answer.reply)
        transcript.append({"role": "assistant", "content": answer.reply})
        if answer.transferred:
            termination = "agent_transfer"
            break
    final_hash = state_hash(dump_state(agent.engine))
    score = score_trial(
        task,
        termination=termination,
        final_hash=final_hash,
        gold_hash=gold_hash,
        agent_messages=agent_messages,
        transcript="\n".join(f"{m['role']}: {m['content']}" for m in transcript),
        judge=judge,
    )
    seconds = time.perf_counter() - started
    return TrialResult(task.id, trial, termination, score, turns, transcript, tools, error, seconds)


def run_suite(
    agent: Tau2Agent,
    user: UserSimulator,
    tasks: Sequence[Tau2Task],
    source: Record,
    *,
    k: int = 1,
    max_turns: int = 20,
    judge: Judge | None = None,
    console: Console | None = None,
) -> SuiteResult:
    """``k`` trials of every task."""
    trials: dict[str, list[TrialResult]] = {}
    replay_errors: dict[str, list[str]] = {}
    for task in tasks:
        gold, errors = reference_hash(source, task.actions)
        if errors:
            replay_errors[task.id] = errors
        trials[task.id] = []
        for n in range(k):
            result = run_trial(agent, user, task, source, gold, trial=n, max_turns=max_turns, judge=judge)
            trials[task.id].append(result)
            if console is not None:
                console.print(
                    f"{task.id} trial {n + 1}/{k}: reward {result.score.reward:.0f} ({result.termination}, "
                    f"{result.turns} turns, {result.seconds:.0f} s)"
                )
    return SuiteResult(list(tasks), trials, k, replay_errors)


def _flag(value: bool | None, judged: bool = True) -> str:
    if not judged:
        return "not judged"
    return "-" if value is None else ("pass" if value else "fail")


def print_report(result: SuiteResult, console: Console) -> None:
    """Per-task table and the summary."""
    table = Table(title="τ²-bench retail: Kefu")
    for column in ("task", "trials", "successes", "DB", "COMMUNICATE", "NL_ASSERTION", "endings"):
        table.add_column(column)
    for task in result.tasks:
        trials = result.trials[task.id]
        db = ", ".join(_flag(t.score.db_match) for t in trials)
        communicate = ", ".join(_flag(t.score.communicate) for t in trials)
        nl = ", ".join(_flag(t.score.nl_assertions, t.score.nl_judged) if task.nl_assertions else "-" for t in trials)
        endings = ", ".join(t.termination for t in trials)
        table.add_row(task.id, str(len(trials)), str(result.successes(task.id)), db, communicate, nl, endings)
    console.print(table)
    console.print(f"pass^k: {result.pass_hat()}  DB match rate: {result.rate('db_match')}  ")
    console.print(f"communicate rate: {result.rate('communicate')}")
    unjudged = sum(1 for t in result.tasks if t.nl_assertions and "NL_ASSERTION" in t.reward_basis)
    if unjudged and not any(tr.score.nl_judged for trials in result.trials.values() for tr in trials):
        console.print(
            f"NL_ASSERTION not judged ({unjudged} tasks carry assertions): "
            "no --judge-url, so it is left out of the reward."
        )
    for task_id, errors in result.replay_errors.items():
        console.print(f"[yellow]reference replay of {task_id} refused: {errors}[/yellow]")


def results_json(result: SuiteResult, *, model: str, llm: str, command: str) -> dict[str, Any]:
    """The results file."""
    return {
        "suite": "tau2-retail",
        "target": "kefu",
        "model": model,
        "llm": llm,
        "machine": machine(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "tasks": len(result.tasks),
        "k": result.k,
        "pass_hat_k": result.pass_hat(),
        "db_match_rate": result.rate("db_match"),
        "communicate_rate": result.rate("communicate"),
        "nl_assertion_judged": any(t.score.nl_judged for trials in result.trials.values() for t in trials),
        "results": [
            {
                "id": task.id,
                "trials": len(result.trials[task.id]),
                "successes": result.successes(task.id),
                "rewards": [t.score.reward for t in result.trials[task.id]],
                "failures": [t.score.failures for t in result.trials[task.id]],
                "terminations": [t.termination for t in result.trials[task.id]],
                "scores": [asdict(t.score) for t in result.trials[task.id]],
                "turns": [t.turns for t in result.trials[task.id]],
                "seconds": [round(t.seconds, 1) for t in result.trials[task.id]],
                "tools": [t.tools for t in result.trials[task.id]],
                "errors": [t.error for t in result.trials[task.id]],
                "transcripts": [t.transcript for t in result.trials[task.id]],
            }
            for task in result.tasks
        ],
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evals.tau2", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, required=True, help="τ² retail db.json")
    parser.add_argument("--tasks", type=Path, required=True, help="tasks in tasks_dev.jsonl format")
    parser.add_argument("--policy", type=Path, help="policy.md, ingested into Kefu's knowledge base")
    llm = parser.add_mutually_exclusive_group(required=True)
    llm.add_argument("--agent-url", help="OpenAI-compatible endpoint for the agent (ends in /v1)")
    llm.add_argument("--model", help="start the embedded llama-server with this model, e.g. qwen2.5-coder-0.5b")
    parser.add_argument("--agent-model", help="model name sent to --agent-url")
    parser.add_argument("--user-url", help="endpoint for the user simulator (default: the agent's)")
    parser.add_argument("--user-model", help="model name for the user simulator (default: the agent's)")
    parser.add_argument("--judge-url", help="endpoint judging nl_assertions (default: not judged)")
    parser.add_argument("--judge-model", default="default")
    parser.add_argument("--k", type=int, default=1, help="trials per task")
    parser.add_argument("--limit", type=int, help="only the first N tasks")
    parser.add_argument("--task", action="append", help="only this task id (repeatable), e.g. tau2-retail:3 or 3")
    parser.add_argument("--max-turns", type=int, default=20, help="customer messages per conversation")
    parser.add_argument("--data-dir", type=Path, help="Kefu's data directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    return parser


def _select(tasks: list[Tau2Task], ids: Sequence[str] | None, limit: int | None) -> list[Tau2Task]:
    if ids:
        wanted = set(ids)
        tasks = [t for t in tasks if t.id in wanted or t.id.rsplit(":", 1)[-1] in wanted]
    return tasks[:limit] if limit else tasks


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    if args.k < 1:
        raise SystemExit("--k must be at least 1")
    console = Console()
    tasks = _select(load_tasks(args.tasks), args.task, args.limit)
    if not tasks:
        raise SystemExit("no task selected")
    source = load_source(args.db)
    with ExitStack() as stack:
        if args.model:
            server = LlmServerProcess(args.model, parallel=1)
            console.print(f"starting llama-server with {args.model} ...")
            server.start()
            stack.callback(server.kill)
            agent_url, llm = server.base_url, f"embedded llama-server ({args.model})"
        else:
            agent_url, llm = args.agent_url, args.agent_url
        agent_model = args.agent_model or args.model
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="kefu-tau2-"))
            stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        agent = KefuTau2Agent.open(data_dir, llm_base_url=agent_url, policy=args.policy, model=agent_model)
        user = UserSimulator(args.user_url or agent_url, model=args.user_model or agent_model or "default")
        judge = Judge(args.judge_url, args.judge_model) if args.judge_url else None
        started = time.perf_counter()
        result = run_suite(agent, user, tasks, source, k=args.k, max_turns=args.max_turns, judge=judge, console=console)
        wall = time.perf_counter() - started
    print_report(result, console)
    console.print(f"wall time {wall:.0f} s for {len(tasks)} tasks x {args.k} trials")
    if args.out:
        command = "python -m evals.tau2 " + shlex.join(sys.argv[1:] if argv is None else list(argv))
        payload = results_json(result, model=agent_model or "default", llm=llm, command=command)
        payload["wall_s"] = round(wall, 1)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {args.out}")
    return 0
