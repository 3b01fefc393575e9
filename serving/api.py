"""HTTP DTOs, credentials as dependencies, and the chat, history, audit, insight and ops routes.

``serving/app.py`` maps Kefu's errors to HTTP status codes; routes only raise them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from core.errors import AuthError, ForbiddenError
from core.types import Channel, CustomerId, HandoffStatus, Lang
from serving.audit import record_key_access, record_nba
from serving.auth import Principal, TokenSigner, verify_api_key
from serving.limits import RateLimiter
from serving.service import KefuService, TurnResult

__all__ = [
    "AUTH_RESPONSES",
    "ChatRequest",
    "ChatResponse",
    "ConversationIdPath",
    "PrincipalDep",
    "ServiceDep",
    "authenticate",
    "bearer",
    "chat_response",
    "router",
]


def _service(request: Request) -> KefuService:
    service: KefuService = request.app.state.service
    return service


ServiceDep = Annotated[KefuService, Depends(_service)]
ConversationIdStr = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
ConversationIdPath = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


def authenticate(service: KefuService, signer: TokenSigner, limiter: RateLimiter, credential: str | None) -> Principal:
    """Who a credential is (an API key or a customer session token), counted against its rate limit.

    Raises:
        AuthError: missing, unknown, revoked, forged or expired.
        RateLimitError: too many requests with this credential.
    """
    if not service.settings.api_auth:
        return Principal(kind="open", subject="open")
    if not credential:
        raise AuthError("missing credential: send 'Authorization: Bearer <API key or session token>'")
    if credential.startswith("kf_"):
        key = verify_api_key(service.desk, credential)
        principal = Principal(kind="key", subject=key.id, channel=key.channel)
    else:
        customer = signer.session_customer(credential)
        principal = Principal(kind="session", subject=f"session:{customer}", customer_id=customer)
    limiter.hit(principal.subject)
    return principal


def bearer(request: Request) -> str | None:
    """The credential of a request: ``Authorization: Bearer …`` or ``X-Kefu-Key``."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-kefu-key") or None


def _principal(request: Request, service: ServiceDep) -> Principal:
    credential = bearer(request) or request.query_params.get("token")
    state = request.app.state
    return authenticate(service, state.signer, state.key_limiter, credential)


PrincipalDep = Annotated[Principal, Depends(_principal)]


class ChatRequest(BaseModel):
    """One customer message."""

    conversation_id: ConversationIdStr
    customer_id: str | None = Field(default=None, min_length=1, max_length=32)
    """The customer, required with an API key; a session token already names its customer."""
    channel: Channel = Channel.WEB
    text: str = Field(min_length=1, max_length=4000)
    lang: Lang | None = None
    """Reply language; detected from the text when omitted."""

    model_config = {
        "json_schema_extra": {
            "examples": [
                {"conversation_id": "demo-1", "customer_id": "C0002", "text": "Where is my order?", "lang": "en"}
            ]
        }
    }


class Source(BaseModel):
    """Something a reply rests on: a retrieved document passage or a product-graph path."""

    ref: int | None
    """The ``[n]`` the reply cites, for document passages."""
    id: str
    """Passage id (``<document>#<chunk>``) or ``graph:<sku>``."""
    source: str
    """The document, or ``product-graph``."""
    title: str
    """Document title and section, or the graph path that explains a recommendation."""
    score: float
    """Retrieval score or recommendation confidence, in [0, 1]."""
    kind: str
    """``document`` or ``graph``."""


class ChatResponse(BaseModel):
    """The agent's reply and how it got there."""

    conversation_id: str
    reply: str
    state: str
    """Dialogue state after the turn."""
    intent: str
    confidence: float
    route: str
    """``llm`` when the model composed the reply, ``rules`` when a template did."""
    tools: list[str]
    events: list[str]
    llm_calls: int
    stage: str
    """Which stage decided the intent: ``classifier``, ``llm`` or ``classifier:llm-down``."""
    emotion: str
    fallback: str | None
    """Why a rule-based reply or a handoff fired, if one did."""
    latency_ms: float
    sources: list[Source] = []
    """Only what was retrieved this turn: passages the reply cites (or all it was composed from) and graph paths."""


class Message(BaseModel):
    """One visible message."""

    role: str
    """``customer``, ``agent`` (the bot), ``human`` (a human agent) or ``notice``."""
    text: str
    agent: str | None = None
    """The human agent's name, for ``human`` messages."""


class HandoffInfo(BaseModel):
    """Whether people are on the conversation."""

    status: HandoffStatus
    """``waiting`` (queued for a human) or ``active`` (a human owns it)."""
    agent: str | None
    """The human agent's name once one took over."""


class Conversation(BaseModel):
    """A conversation's state and visible history."""

    conversation_id: str
    state: str | None
    messages: list[Message]
    handoff: HandoffInfo | None = None
    """Set while the conversation is queued for or owned by a human agent."""


class DemoCustomer(BaseModel):
    """A demo customer to try the chat with."""

    id: str
    name: str
    lang: str
    tier: str
    recent_orders: list[str]


router = APIRouter()


def chat_response(result: TurnResult) -> ChatResponse:
    """The HTTP shape of a turn's result."""
    return ChatResponse(**{k: v for k, v in result.__dict__.items() if k in ChatResponse.model_fields})


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "a body that is not valid JSON"},
    401: {"description": "missing, unknown or expired credential"},
    404: {"description": "unknown customer, or a conversation of another customer"},
    403: {"description": "the credential may not do this"},
    429: {"description": "rate limit; see Retry-After"},
}
"""Refusals every authenticated route may answer with, for the OpenAPI schema."""


@router.post("/v1/chat", response_model=ChatResponse, tags=["chat"], responses=AUTH_RESPONSES)
def chat(body: ChatRequest, service: ServiceDep, principal: PrincipalDep, request: Request) -> ChatResponse:
    """Send a customer message and get the agent's reply (the conversation id in the body)."""
    customer = principal.customer(body.customer_id)
    request.app.state.conversation_limiter.hit(body.conversation_id)
    result = service.chat(body.conversation_id, customer, body.text, channel=body.channel, lang=body.lang)
    return chat_response(result)


@router.get("/v1/conversations/{conversation_id}", response_model=Conversation, tags=["chat"], responses=AUTH_RESPONSES)
def conversation(
    conversation_id: ConversationIdPath,
    service: ServiceDep,
    principal: PrincipalDep,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
) -> Conversation:
    """A conversation's history and handoff status, for reloading a chat window.

    With a session token the customer comes from the token; with an API key, from ``customer_id``.
    A conversation that does not exist yet has an empty history.
    """
    customer = principal.customer(customer_id)
    state, entries = service.history(conversation_id, customer)
    record_key_access(service, principal, action="view_conversation", target=conversation_id, detail="history")
    handoff = service.desk.open_handoff_for(conversation_id) if entries else None
    agent = service.desk.get_agent(handoff.agent_id) if handoff is not None and handoff.agent_id else None
    return Conversation(
        conversation_id=conversation_id,
        state=state,
        messages=[Message(role=e.role, text=e.text, agent=e.agent) for e in entries],
        handoff=(
            HandoffInfo(status=handoff.status, agent=agent.name if agent is not None else None)
            if handoff is not None
            else None
        ),
    )


class AuditEntry(BaseModel):
    """How one turn was decided."""

    created_at: str
    intent: str
    confidence: float
    stage: str
    thresholds: str
    decision: str
    fallback: str | None
    emotion: str
    state: str
    events: list[str]
    tools: list[str]
    route: str
    llm_calls: int
    latency_ms: float


@router.get(
    "/v1/conversations/{conversation_id}/audit",
    response_model=list[AuditEntry],
    tags=["chat"],
    responses=AUTH_RESPONSES,
)
def conversation_audit(
    conversation_id: ConversationIdPath,
    service: ServiceDep,
    principal: PrincipalDep,
    customer_id: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
) -> list[AuditEntry]:
    """Every turn's intent, confidence, deciding stage, thresholds and fallback reason."""
    customer_id = principal.customer(customer_id)
    entries = service.audit(conversation_id, customer_id)
    record_key_access(service, principal, action="view_conversation", target=conversation_id, detail="turn audit")
    return [
        AuditEntry(
            **{
                **entry.model_dump(exclude={"conversation_id", "customer_id"}),
                "created_at": entry.created_at.isoformat(),
            }
        )
        for entry in entries
    ]


def _demo_only(service: KefuService) -> None:
    if not service.settings.demo_pages:
        raise HTTPException(404, "the demo pages are turned off (KEFU_DEMO_PAGES=false)")


@router.get("/v1/demo/customers", response_model=list[DemoCustomer], tags=["demo"])
def demo_customers(service: ServiceDep) -> list[DemoCustomer]:
    """Two demo customers (zh and en) with their recent order numbers (only with ``KEFU_DEMO_PAGES``)."""
    _demo_only(service)
    out: list[DemoCustomer] = []
    for customer_id in ("C0001", "C0002"):
        customer = service.store.get_customer(CustomerId(customer_id))
        if customer is None:
            continue
        orders = service.store.list_orders(customer.id, limit=3)
        out.append(
            DemoCustomer(
                id=customer.id,
                name=customer.name,
                lang=customer.lang.value,
                tier=customer.tier.value,
                recent_orders=[order.id for order in orders],
            )
        )
    return out


class NextBestActionRequest(BaseModel):
    """Whose next best action, and optionally what they are talking about."""

    customer_id: str = Field(min_length=1, max_length=32)
    context: str | None = Field(default=None, max_length=2000)
    """What the customer is asking about, e.g. "家里有猫，掉毛严重"; drives a product recommendation."""
    lang: Lang | None = None
    """Language of the rationale; the customer's own when omitted."""

    model_config = {"json_schema_extra": {"examples": [{"customer_id": "C0001", "context": "家里有猫，掉毛严重"}]}}


class NextBestActionResponse(BaseModel):
    """The action, the product it concerns (if any), how sure, and why."""

    customer_id: str
    action: str
    """``resolve_open_ticket``, ``recommend_product``, ``recommend_accessory``, ``retention_offer`` or ``none``."""
    product_id: str | None
    confidence: float
    rationale: str
    """What drove it: the ticket, the graph path, the purchase the accessory belongs to, the model's top features."""
    drivers: list[str] = []
    """One item per driver: ``churn_30d=0.93``, ``recency_days=94 (+0.83)``, ``AUD-001 ← ACCESSORY_OF ← AUD-009``."""
    scores: dict[str, float] = {}
    """The customer's calibrated ``churn_30d`` and ``repurchase_3d`` scores (empty until the models are trained)."""


@router.post(
    "/v1/insights/next-best-action", response_model=NextBestActionResponse, tags=["insights"], responses=AUTH_RESPONSES
)
def next_best_action(
    body: NextBestActionRequest, service: ServiceDep, principal: PrincipalDep
) -> NextBestActionResponse:
    """The next best action for a customer from their profile, order history and the product graph (API keys only)."""
    if principal.kind == "session":
        raise ForbiddenError("insights need an API key, not a customer session token")
    action = service.next_best_action(body.customer_id, body.context, body.lang)
    record_nba(service, action, principal)
    return NextBestActionResponse(**action.model_dump(mode="json"))


@router.get("/healthz", tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"], responses={503: {"description": "the database, vector store or Redis is down"}})
def readyz(service: ServiceDep) -> Response:
    """Ready to chat: the database, the vector store and Redis (with replicas) answer; the LLM may be down."""
    checks = service.readiness()
    ready = (
        checks["database"] == "ok"
        and checks["vector_store"].startswith("ok")
        and checks["redis"] in ("ok", "in process")
    )
    body = {
        "status": "ok" if ready else "unavailable",
        **checks,
        "llm_url": service.llm_base_url or "none (rules only)",
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(service: ServiceDep) -> Response:
    """Prometheus metrics: turns, latency by node, fallbacks, handoffs, intents, LLM calls and tokens."""
    return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
