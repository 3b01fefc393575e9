"""``kefu dashboard drift``: the drift watch on the command line, and the proposal file for review."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.policy import Policy
from core.db import make_engine
from core.embeddings import sentence_encoder
from core.errors import KefuError
from core.settings import Settings
from insights.drift import DriftPolicy, DriftReport, drift_report, write_proposals
from insights.turns import load_turns, resolve_window

__all__ = ["dashboard_app"]

dashboard_app = typer.Typer(help="The lead's dashboard on the command line.", no_args_is_help=True)
_console = Console()


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)", param_hint=name) from exc


@dashboard_app.command("drift")
def drift(
    since: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: 30 days before --until).")] = None,
    until: Annotated[str | None, typer.Option(help="Day after the last, exclusive (default: after the data).")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel: web, app, wechat or cli.")] = None,
    min_turns: Annotated[int, typer.Option(min=1, help="Days with fewer bot turns never alert.")] = 5,
    proposals: Annotated[
        Path | None,
        typer.Option(help="Write the alert days' questions with proposed labels here (intent JSONL).", dir_okay=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
    fail_on_alert: Annotated[bool, typer.Option(help="Exit with status 3 when an alert fired (cron).")] = False,
) -> None:
    """Per day, the shares of low-confidence and unknown-intent turns; alerts above the thresholds.

    Thresholds: KEFU_DRIFT_LOW_CONFIDENCE_SHARE, KEFU_DRIFT_UNKNOWN_SHARE and the confidence policy's
    unsure_below. With --proposals the alert days' questions are grouped and written in the intent
    training format ({"text","label","lang"} per line). Review the file before training: correct
    or delete lines and rename every "new topic: ..." label to an intent the dialogue knows (or
    out_of_scope); then train with the shipped data plus the reviewed file:
    `kefu intents train --extra reviewed.jsonl`.
    Nothing is retrained automatically.
    """
    settings = Settings()
    try:
        unsure_below = Policy.load(settings.policy_file).unsure_below
        policy = DriftPolicy.from_settings(settings, unsure_below, min_turns=min_turns)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.resolved_database_url)
        window = resolve_window(engine, _day(since, "--since"), _day(until, "--until"), channel)
        report = drift_report(load_turns(engine, window), window.days, policy, sentence_encoder())
    except KefuError as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(report.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        shown = f"{window.since} .. {window.until} (exclusive)" + (f" · {window.channel}" if window.channel else "")
        _print(report, shown)
    if proposals is not None:
        count = write_proposals(report, proposals)
        _console.print(f"wrote {count} proposed examples to {proposals}: review them before training")
    if fail_on_alert and report.alerts:
        raise typer.Exit(3)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _print(report: DriftReport, window: str) -> None:
    _console.print(
        f"[bold]Drift watch[/bold] {window}: low confidence < {report.unsure_below} above "
        f"{report.low_confidence_threshold:.0%}, unknown intent above {report.unknown_threshold:.0%} "
        f"(days with {report.min_turns}+ bot turns)"
    )
    alerts = {(a.day, a.metric) for a in report.alerts}
    days = Table("day", "turns", "low confidence", "unknown intent", "alert")
    for day in report.days:
        fired = [metric for metric in ("low_confidence", "unknown_intent") if (day.day, metric) in alerts]
        days.add_row(
            day.day.isoformat(),
            str(day.turns),
            _pct(day.low_confidence_share),
            _pct(day.unknown_share),
            "[red]" + ", ".join(fired) + "[/red]" if fired else "",
        )
    _console.print(days)
    if not report.alerts:
        _console.print("no alerts")
        return
    groups = Table("proposed label", "basis", "count", "wordings")
    for group in report.proposals:
        wordings = "; ".join(example.text for example in group.examples[:4])
        more = f" (+{len(group.examples) - 4})" if len(group.examples) > 4 else ""
        groups.add_row(group.label, group.basis, str(group.count), wordings + more)
    _console.print(groups)
