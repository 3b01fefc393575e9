"""The insight routes: the customer segments (API keys only, like the next-best-action route)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from core.errors import BackendError, ForbiddenError
from serving.api import AUTH_RESPONSES, PrincipalDep, ServiceDep

__all__ = ["router"]

router = APIRouter(tags=["insights"])


class SegmentResponse(BaseModel):
    """One named customer segment."""

    name: str
    """A stable slug (``champions``, ``loyal``, ``at_risk``, ``hibernating``, ``complainers``, ...)."""
    label_en: str
    label_zh: str
    size: int
    traits: dict[str, float]
    """Mean recency (days), orders and spend in a year, return rate, complaints in 90 days, tenure (days)."""
    description: str


class SegmentsResponse(BaseModel):
    """Every customer's segment, summarised: the segments, largest first."""

    at: str | None
    """When the features were computed (just after the store's latest activity), ISO 8601 in the store's
    local time; None for an empty store."""
    customers: int
    """How many customers the segments cover (the sizes add up to it)."""
    segments: list[SegmentResponse]


@router.get("/v1/insights/segments", response_model=SegmentsResponse, responses=AUTH_RESPONSES)
def segments(service: ServiceDep, principal: PrincipalDep) -> SegmentsResponse:
    """The customer segments (RFM clustering) with their sizes and traits (API keys only)."""
    if principal.kind == "session":
        raise ForbiddenError("insights need an API key, not a customer session token")
    insights = service.insights
    if insights is None:
        raise BackendError("customer insights are not available on this server")
    found = insights.segments()  # a sync route: FastAPI runs it in a worker thread
    at = insights.computed_at()
    return SegmentsResponse(
        at=at.isoformat(timespec="seconds") if at is not None else None,
        customers=sum(segment.size for segment in found),
        segments=[SegmentResponse(**segment.model_dump()) for segment in found],
    )
