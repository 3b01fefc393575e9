"""The lead's dashboard API: the summary, CSV exports, the drift watch and its proposed training examples.

Every route needs a console login with the role ``lead`` (401 without one, 403 for other agents),
and every view or export is recorded in the access audit. Dates are UTC days; ``until`` is
exclusive; without dates the window is the last 30 days of data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import Engine

from core.embeddings import sentence_encoder
from core.types import AgentAccount, Channel, CustomerId
from insights.dashboard import Summary, build_summary
from insights.dashboard_tables import table
from insights.drift import DriftPolicy, DriftReport, drift_report, proposal_lines
from insights.questions import CachingEncoder
from insights.turns import Window, customer_tiers, customers_in, load_turns, resolve_window
from serving.api import ServiceDep
from serving.audit import record_access
from serving.console import LeadDep
from serving.service import KefuService

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/dashboard",
    tags=["dashboard"],
    responses={
        401: {"description": "not logged in to the console"},
        403: {"description": "logged in, but not a lead"},
        422: {"description": "a bad date, a window that ends before it starts or spans over 3 years, a bad table"},
    },
)

TIER_NOTE = "by tier: segments not computed"
SinceQuery = Annotated[date | None, Query(description="First day (UTC, YYYY-MM-DD); default: 30 days before until.")]
UntilQuery = Annotated[date | None, Query(description="The day after the last (exclusive); default: after the data.")]
ChannelQuery = Annotated[Channel | None, Query(description="Only this channel's conversations and turns.")]
MinTurnsQuery = Annotated[int, Query(ge=1, le=100_000, description="Days with fewer bot turns never alert.")]
TableName = Literal["daily", "intents", "handoff_reasons", "segments", "questions", "drift"]


@cache
def _encoder() -> CachingEncoder:
    """The process-wide sentence encoder, remembering the questions it has embedded."""
    return CachingEncoder(sentence_encoder())


@dataclass(frozen=True)
class _View:
    """What every dashboard route asks for: the window, and the fewest bot turns a day needs to alert."""

    window: Window
    min_turns: int


def _view(
    service: ServiceDep,
    since: SinceQuery = None,
    until: UntilQuery = None,
    channel: ChannelQuery = None,
    min_turns: MinTurnsQuery = 5,
) -> _View:
    window = resolve_window(service.store.engine, since, until, channel.value if channel else None)
    return _View(window, min_turns)


ViewDep = Annotated[_View, Depends(_view)]


def _policy(service: KefuService, min_turns: int) -> DriftPolicy:
    return DriftPolicy.from_settings(service.settings, service.policy.unsure_below, min_turns=min_turns)


def _segments(
    service: KefuService, engine: Engine, window: Window
) -> tuple[Mapping[str, str], str, str, dict[str, tuple[str, str]]]:
    """Customer to segment for the window's customers: the insight segments, or tiers without them."""
    customers = customers_in(engine, window)
    insights = service.insights
    if insights is None:
        return customer_tiers(engine, customers), "tier", TIER_NOTE, {}
    labels = {info.name: (info.label_en, info.label_zh) for info in insights.segments()}
    mapping = {c: segment for c in customers if (segment := insights.segment_of(CustomerId(c))) is not None}
    return mapping, "segment", "", labels


def _summary(service: KefuService, window: Window, min_turns: int) -> Summary:
    engine = service.store.engine
    segments, basis, note, labels = _segments(service, engine, window)
    return build_summary(
        engine,
        window,
        segments=segments,
        encoder=_encoder(),
        policy=_policy(service, min_turns),
        segment_basis=basis,
        segment_note=note,
        segment_labels=labels,
    )


def _drift(service: KefuService, window: Window, min_turns: int) -> DriftReport:
    turns = load_turns(service.store.engine, window)
    return drift_report(turns, window.days, _policy(service, min_turns), _encoder())


def _audit(service: KefuService, lead: AgentAccount, action: str, target: str, window: Window) -> None:
    detail = f"{window.since}..{window.until} channel={window.channel or 'all'}"
    record_access(service, actor=f"agent:{lead.id}", role=lead.role, action=action, target=target, detail=detail)


def _filename(stem: str, window: Window, suffix: str) -> str:
    channel = f"-{window.channel}" if window.channel else ""
    return f"kefu-{stem}-{window.since}-{window.until}{channel}.{suffix}"


def _download(body: str, media_type: str, filename: str) -> Response:
    """A file the browser saves (never caches: it holds customers' words)."""
    return Response(
        body,
        media_type=f"{media_type}; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _cell(value: Any) -> Any:
    """A CSV cell; text a spreadsheet would run as a formula (customers wrote it) is quoted with ``'``."""
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([_cell(value) for value in row] for row in rows)
    return buffer.getvalue()


@router.get("/summary", response_model=Summary)
def summary(
    lead: LeadDep,
    service: ServiceDep,
    view: ViewDep,
) -> Summary:
    """Containment, handoffs, fallbacks, intents, emotions, satisfaction, latency, segments, questions and drift."""
    window, min_turns = view.window, view.min_turns
    result = _summary(service, window, min_turns)
    _audit(service, lead, "view_dashboard", "dashboard", window)
    return result


@router.get(
    "/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "the table as CSV with a header row"}},
)
def export_csv(
    lead: LeadDep,
    service: ServiceDep,
    view: ViewDep,
    table_name: Annotated[TableName, Query(alias="table", description="Which table to export.")] = "daily",
) -> Response:
    """One of the dashboard's tables as a CSV download."""
    window, min_turns = view.window, view.min_turns
    header, rows = table(_summary(service, window, min_turns), table_name)
    _audit(service, lead, "export", f"dashboard:{table_name}", window)
    return _download(_csv(header, rows), "text/csv", _filename(table_name, window, "csv"))


@router.get("/drift", response_model=DriftReport)
def drift(
    lead: LeadDep,
    service: ServiceDep,
    view: ViewDep,
) -> DriftReport:
    """Per day, the shares of low-confidence and unknown-intent turns; alerts; proposed labels for alert days."""
    window, min_turns = view.window, view.min_turns
    report = _drift(service, window, min_turns)
    _audit(service, lead, "view_dashboard", "dashboard:drift", window)
    return report


@router.get(
    "/drift/proposals.jsonl",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "one training example per line"}},
)
def drift_proposals(
    lead: LeadDep,
    service: ServiceDep,
    view: ViewDep,
) -> Response:
    """The alert days' questions with proposed labels, as intent training JSONL (``{"text","label","lang"}``).

    A proposal for review, not training data: correct the labels (rename every ``new topic: ...``
    to a real intent or ``out_of_scope``), then train with ``kefu intents train --extra FILE``.
    """
    window, min_turns = view.window, view.min_turns
    lines = proposal_lines(_drift(service, window, min_turns))
    _audit(service, lead, "export", "dashboard:drift_proposals", window)
    body = "".join(line + "\n" for line in lines)
    return _download(body, "application/x-ndjson", _filename("intent-proposals", window, "jsonl"))
