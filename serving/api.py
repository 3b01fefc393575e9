"""HTTP DTOs and routes. The only place that maps Kefu's errors to HTTP status codes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from core.types import Channel, CustomerId, Lang
from serving.service import KefuService

__all__ = ["ChatRequest", "ChatResponse", "router"]


def _service(request: Request) -> KefuService:
    service: KefuService = request.app.state.service
    return service


ServiceDep = Annotated[KefuService, Depends(_service)]
ConversationIdStr = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]


class ChatRequest(BaseModel):
    """One customer message."""

    conversation_id: ConversationIdStr
    customer_id: str = Field(min_length=1, max_length=32)
    """The customer the channel authenticated."""
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
    text: str


class Conversation(BaseModel):
    """A conversation's state and visible history."""

    conversation_id: str
    state: str | None
    messages: list[Message]


class DemoCustomer(BaseModel):
    """A demo customer to try the chat with."""

    id: str
    name: str
    lang: str
    tier: str
    recent_orders: list[str]


router = APIRouter()


@router.post("/v1/chat", response_model=ChatResponse, tags=["chat"])
def chat(body: ChatRequest, service: ServiceDep) -> ChatResponse:
    """Send a customer message and get the agent's reply."""
    result = service.chat(body.conversation_id, body.customer_id, body.text, channel=body.channel, lang=body.lang)
    return ChatResponse(**result.__dict__)


@router.get("/v1/conversations/{conversation_id}", response_model=Conversation, tags=["chat"])
def conversation(
    conversation_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
    customer_id: Annotated[str, Query(min_length=1, max_length=32)],
    service: ServiceDep,
) -> Conversation:
    """A conversation's history, for reloading a chat window."""
    state, entries = service.history(conversation_id, customer_id)
    return Conversation(
        conversation_id=conversation_id,
        state=state,
        messages=[Message(role=e.role, text=e.text) for e in entries],
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


@router.get("/v1/conversations/{conversation_id}/audit", response_model=list[AuditEntry], tags=["chat"])
def conversation_audit(
    conversation_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")],
    customer_id: Annotated[str, Query(min_length=1, max_length=32)],
    service: ServiceDep,
) -> list[AuditEntry]:
    """Every turn's intent, confidence, deciding stage, thresholds and fallback reason."""
    return [
        AuditEntry(
            **{
                **entry.model_dump(exclude={"conversation_id", "customer_id"}),
                "created_at": entry.created_at.isoformat(),
            }
        )
        for entry in service.audit(conversation_id, customer_id)
    ]


@router.get("/v1/demo/customers", response_model=list[DemoCustomer], tags=["demo"])
def demo_customers(service: ServiceDep) -> list[DemoCustomer]:
    """Two demo customers (zh and en) with their recent order numbers."""
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
    """What drove it: the ticket, the graph path, the purchase the accessory belongs to."""


@router.post("/v1/insights/next-best-action", response_model=NextBestActionResponse, tags=["insights"])
def next_best_action(body: NextBestActionRequest, service: ServiceDep) -> NextBestActionResponse:
    """The next best action for a customer from their profile, order history and the product graph."""
    action = service.next_best_action(body.customer_id, body.context, body.lang)
    return NextBestActionResponse(**action.model_dump(mode="json"))


@router.get("/healthz", tags=["ops"])
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
def readyz(service: ServiceDep) -> dict[str, str]:
    """Ready to chat; says which LLM backend answers (rules answer either way) and the prompt-cache state."""
    return {"status": "ok", "llm": service.llm_base_url or "none (rules only)", "prompt_cache": service.prompt_cache}
