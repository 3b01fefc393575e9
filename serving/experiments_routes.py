"""``GET /v1/insights/experiments``: A/B outcomes per variant with significance tests (API keys only)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from core.errors import ForbiddenError
from insights.outcomes import ExperimentReport
from serving.api import AUTH_RESPONSES, PrincipalDep, ServiceDep

__all__ = ["ExperimentsOut", "router"]

router = APIRouter()


class ExperimentsOut(BaseModel):
    """Every experiment of the configured file (inactive ones are finished and still reported)."""

    file: str | None
    """``KEFU_EXPERIMENTS_FILE``; null when no experiments are configured."""
    active: str | None
    """The experiment new conversations are assigned to, if any."""
    experiments: list[ExperimentReport]


@router.get("/v1/insights/experiments", response_model=ExperimentsOut, tags=["insights"], responses=AUTH_RESPONSES)
def experiments(service: ServiceDep, principal: PrincipalDep) -> ExperimentsOut:
    """Containment, conversion and satisfaction per variant, each variant against the control.

    Proportions are compared with a two-proportion z-test (Fisher's exact test for small counts),
    ratings with Mann-Whitney U; each difference comes with its 95 % interval, and an arm below the
    experiment's minimum sample says "not enough data" instead of a p-value.
    """
    if principal.kind == "session":
        raise ForbiddenError("insights need an API key, not a customer session token")
    configured = service.experiments
    if configured is None:
        return ExperimentsOut(file=None, active=None, experiments=[])
    active = configured.active
    return ExperimentsOut(
        file=str(service.settings.experiments_file) if service.settings.experiments_file else None,
        active=active.name if active is not None else None,
        experiments=configured.report(service.store.engine),
    )
