"""Baseline: the store as it was when migrations began.

Customers, catalog, orders and tickets; turn and access audits; the PII vault; the human desk
(handoffs, notes, agents, API keys, channel identities); stored answers and the service log.

The tables are declared as data (``schema``) rather than as ``op.create_table`` calls because
``core.migrations`` also needs them to complete a database made before migrations existed (it
creates missing tables and adds missing columns, then stamps this revision). Later revisions use
``op`` as usual. The Python-side defaults below are only used for that completion: they fill the
column in existing rows.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def schema() -> sa.MetaData:
    """The tables this revision creates, on a new ``MetaData``."""
    metadata = sa.MetaData()
    sa.Table(
        "customers",
        metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("email", sa.String(120), nullable=False, unique=True),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False, index=True),
        sa.Column("lang", sa.String(4), nullable=False),
        sa.Column("city", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "products",
        metadata,
        sa.Column("sku", sa.String(24), primary_key=True),
        sa.Column("name_en", sa.String(120), nullable=False),
        sa.Column("name_zh", sa.String(120), nullable=False),
        sa.Column("category", sa.String(32), nullable=False, index=True),
        sa.Column("price", sa.Numeric(10, 2, asdecimal=False), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("features_en", sa.JSON(), nullable=False),
        sa.Column("features_zh", sa.JSON(), nullable=False),
        sa.Column("scenarios_en", sa.JSON(), nullable=False),
        sa.Column("scenarios_zh", sa.JSON(), nullable=False),
    )
    sa.Table(
        "orders",
        metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("customer_id", sa.String(16), sa.ForeignKey("customers.id"), nullable=False, index=True),
        sa.Column("status", sa.String(24), nullable=False, index=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("total", sa.Numeric(10, 2, asdecimal=False), nullable=False),
        sa.Column("carrier", sa.String(32)),
        sa.Column("tracking_number", sa.String(32)),
        sa.Column("estimated_delivery", sa.DateTime()),
    )
    sa.Table(
        "order_items",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(16), sa.ForeignKey("orders.id"), nullable=False, index=True),
        sa.Column("sku", sa.String(24), sa.ForeignKey("products.sku"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(10, 2, asdecimal=False), nullable=False),
    )
    sa.Table(
        "tickets",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("customer_id", sa.String(16), sa.ForeignKey("customers.id"), nullable=False, index=True),
        sa.Column("conversation_id", sa.String(64), index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "turn_audit",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), nullable=False, index=True),
        sa.Column("customer_id", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("intent", sa.String(32), nullable=False),
        sa.Column("confidence", sa.Numeric(6, 4, asdecimal=False), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("thresholds", sa.String(120), nullable=False),
        sa.Column("decision", sa.String(500), nullable=False),
        sa.Column("fallback", sa.String(200)),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("route", sa.String(8), nullable=False),
        sa.Column("llm_calls", sa.Integer(), nullable=False),
        sa.Column("latency_ms", sa.Numeric(10, 1, asdecimal=False), nullable=False),
        sa.Column("channel", sa.String(16)),
        sa.Column("question", sa.String(4000)),
        sa.Column("variant", sa.String(80)),
    )
    sa.Table(
        "pii_vault",
        metadata,
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("placeholder", sa.String(64), primary_key=True),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False, index=True),
    )
    sa.Table(
        "pii_vault_meta",
        metadata,
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.LargeBinary(), nullable=False),
    )
    sa.Table(
        "handoffs",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("conversation_id", sa.String(64), nullable=False, index=True),
        sa.Column("customer_id", sa.String(16), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("packet", sa.JSON(), nullable=False),
        sa.Column("agent_id", sa.String(32)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("taken_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
    )
    sa.Table(
        "handoff_notes",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("handoff_id", sa.Integer(), sa.ForeignKey("handoffs.id"), nullable=False, index=True),
        sa.Column("agent_id", sa.String(32), nullable=False),
        sa.Column("text", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "agents",
        metadata,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, default=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "api_keys",
        metadata,
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime()),
    )
    sa.Table(
        "channel_identities",
        metadata,
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("external_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(16), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    sa.Table(
        "inbound_messages",
        metadata,
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False, index=True),
    )
    sa.Table(
        "conversation_log",
        metadata,
        sa.Column("conversation_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(16), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("lang", sa.String(4), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("last_at", sa.DateTime(), nullable=False, index=True),
        sa.Column("turns", sa.Integer(), nullable=False, default=0),
        sa.Column("intents", sa.JSON(), nullable=False),
        sa.Column("negative_turns", sa.Integer(), nullable=False, default=0),
        sa.Column("fallback_turns", sa.Integer(), nullable=False, default=0),
        sa.Column("handoff_reason", sa.String(300)),
        sa.Column("reached_close_deal", sa.Boolean(), nullable=False, default=False),
        sa.Column("satisfaction", sa.Integer()),
        sa.Column("variant", sa.String(80), index=True),
        sa.Column("seeded", sa.Boolean(), nullable=False, default=False),
    )
    sa.Table(
        "access_audit",
        metadata,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False, index=True),
        sa.Column("actor", sa.String(64), nullable=False, index=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(40), nullable=False, index=True),
        sa.Column("target", sa.String(80), nullable=False, index=True),
        sa.Column("detail", sa.String(1000), nullable=False, default=""),
    )
    return metadata


def upgrade() -> None:
    """Create every table and index of ``schema``."""
    schema().create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    """Drop every table of ``schema``."""
    schema().drop_all(op.get_bind(), checkfirst=False)
