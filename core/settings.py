"""One ``Settings`` object, read from ``KEFU_*`` environment variables (and ``.env``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

__all__ = ["Settings"]

LlmBackend = Literal["llamacpp", "vllm", "openai"]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "kefu"


class Settings(BaseSettings):
    """Everything Kefu can be told; defaults run on one machine with no setup."""

    model_config = SettingsConfigDict(env_prefix="KEFU_", env_file=".env", extra="ignore")

    llm_backend: LlmBackend = "llamacpp"
    """``llamacpp`` starts a local llama-server; ``vllm`` and ``openai`` use ``llm_base_url``."""
    llm_base_url: str | None = None
    """OpenAI-compatible base URL (``.../v1``); for ``llamacpp`` it is set when the server starts."""
    llm_model: str = "qwen2.5-coder-1.5b"
    """For ``llamacpp``: a name from ``kefu models list`` or a path to a GGUF file.
    Otherwise: the model name the server serves."""
    llm_base_urls: list[str] = []
    """Several OpenAI-compatible endpoints serving ``llm_model`` (vLLM replicas), as a JSON list; it
    replaces ``llm_base_url``. Calls are spread over the healthy ones; a failing endpoint is skipped
    until a health check (``GET /models``) passes again; with all of them down, turns get rule replies."""
    llm_health_interval_s: float = Field(default=10.0, gt=0)
    """How often each of ``llm_base_urls`` is health-checked."""
    llm_api_key: SecretStr = SecretStr("not-needed")
    llm_timeout_s: float = Field(default=30.0, gt=0)
    """A slower answer than this counts as a dead backend: the turn gets a rule-based reply."""
    llm_max_tokens: int = Field(default=256, gt=0)
    llm_cooldown_s: float = Field(default=15.0, ge=0)
    """After a backend failure, turns skip the LLM this long, then the next turn probes it again."""

    llama_server_bin: Path | None = None
    """Defaults to the binary ``scripts/build-llama-server.sh`` caches."""
    llama_port: int = Field(default=0, ge=0, le=65535)
    """0 picks a free port."""
    llama_ctx: int = Field(default=4096, ge=512)
    llama_threads: int | None = None

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where models and the llama-server binary are cached, across checkouts."""
    data_dir: Path = Path("var")
    """Where the demo database and conversation checkpoints live."""
    database_url: str | None = None
    """Any SQLAlchemy URL; defaults to SQLite in ``data_dir``. With a PostgreSQL URL
    (``postgresql+psycopg://user:password@host:5432/kefu``) the conversation checkpoints live in
    the same database too, so any number of API replicas can share it."""
    db_pool_size: int = Field(default=10, ge=1)
    """Connections each API process keeps open to a database server (PostgreSQL); SQLite ignores it."""
    db_max_overflow: int = Field(default=10, ge=0)
    """Connections a process may open beyond ``db_pool_size`` at peaks, closed again when returned."""

    redis_url: str | None = None
    """``redis://host:6379/0``: share live events (sockets, consoles), the handoff queue, rate-limit
    counters and per-conversation turn locks between API replicas. Unset, one process keeps them in
    memory, which is right for exactly one replica."""
    turn_lock_ttl_s: float = Field(default=10.0, gt=0)
    """With Redis, a replica renews a conversation's turn lock while the turn runs; if the replica dies,
    the lock expires this long after its last renewal and the conversation goes on elsewhere."""
    replica_id: str | None = None
    """This API process's name in logs and lock owners; defaults to ``hostname:pid``."""

    policy_file: Path | None = None
    """Confidence thresholds and limits (TOML); defaults to the shipped ``agent/policy.toml``."""
    intent_model_dir: Path | None = None
    """Root of the versioned intent models; defaults to ``data_dir/models/intents``. The current
    model there is loaded at start-up; if there is none, one is trained from the shipped data."""
    max_message_chars: int = Field(default=4000, gt=0)

    vault_key: SecretStr | None = None
    """Key of the PII vault (``kefu vault keygen``); overrides ``vault_key_file``. Keep it in your
    secret store, not next to the data."""
    vault_key_file: Path | None = None
    """File holding the vault key; defaults to ``data_dir/vault.key`` (``kefu vault init`` creates it)."""
    vault_old_keys: SecretStr | None = None
    """Comma-separated previous keys, so a rotated vault still opens until ``kefu vault rotate``."""
    retention_days: float = Field(default=30.0, gt=0)
    """The conversation retention: a conversation (its checkpoints and stored answers) and the
    personal data behind its placeholders are deleted this long after its last turn, and turn audits
    this old lose the customer's message; the decisions are kept for ``audit_retention_days``."""
    prune_interval_s: float = Field(default=3600.0, gt=0)
    """How often the server prunes stored data (also once at start-up): each conversation keeps only
    its latest checkpoint; conversations, stored answers, vault entries and the customers' words in
    turn audits go after ``retention_days``, turn and access audits after ``audit_retention_days``,
    the service log (``conversation_log``) after ``analytics_retention_days``."""
    db_busy_timeout_s: float = Field(default=10.0, gt=0)
    """How long a turn waits for a locked SQLite database before it is refused with 503 (retry it)."""
    audit_retention_days: float = Field(default=365.0, gt=0)
    """Turn decisions and the access audit (who viewed what) are kept this long; the customer's
    words in a turn audit go after ``retention_days`` with the conversation."""
    analytics_retention_days: float = Field(default=730.0, gt=0)
    """The text-free service log of conversations (``conversation_log``) that segments, the churn
    and repurchase models and the dashboard read is kept this long."""

    insights_dir: Path | None = None
    """Where ``kefu insights train`` writes the churn and repurchase models and their plots;
    defaults to ``data_dir/insights``."""
    experiments_file: Path | None = None
    """A/B experiments (TOML): variants, their weights and what each changes; none run by default."""
    drift_low_confidence_share: float = Field(default=0.35, gt=0, le=1)
    """A day whose share of low-confidence turns exceeds this raises a drift alert on the dashboard."""
    drift_unknown_share: float = Field(default=0.20, gt=0, le=1)
    """A day whose share of turns with an intent the classifier does not know exceeds this raises one too."""

    kb_dir: Path | None = None
    """Where the knowledge base lives (Chroma documents and the product graph); defaults to ``data_dir/kb``."""
    kb_docs: list[Path] | None = None
    """Document files or folders ingested at start-up (unchanged ones are skipped), as a JSON list;
    defaults to the demo documents shipped with Kefu. ``[]`` ingests nothing (use ``kefu kb ingest``)."""
    kb_triples: Path | None = None
    """The product graph's triples file (YAML); defaults to the demo one shipped with Kefu."""
    chroma_url: str | None = None
    """``http://host:8000``: keep the document chunks in a Chroma server (``chroma run``) that every
    API replica shares, instead of files in ``kb_dir``."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_format: Literal["json", "text"] = "json"
    """``json``: one JSON object per line, with no customer text or personal data in it."""

    api_auth: bool = True
    """Require a channel API key (or a customer session token) on the conversation API. Turn off only
    on a machine no one else can reach."""
    secret_key: SecretStr | None = None
    """Signs customer session tokens and console logins; overrides ``secret_key_file``."""
    secret_key_file: Path | None = None
    """Defaults to ``data_dir/secret.key``, created on first start."""
    session_ttl_s: int = Field(default=24 * 3600, gt=0)
    """How long a customer session token (widget, app) and a console login stay valid."""
    demo_pages: bool = True
    """Serve the demo shop page and the web chat, which sign in the demo customers themselves. Turn off
    in production: your own site issues session tokens (``POST /v1/sessions``)."""
    cors_origins: list[str] = []
    """Origins allowed to call the API from a browser (JSON list), e.g. ``["https://shop.example.com"]``."""
    rate_per_key_per_min: int = Field(default=600, gt=0)
    """Requests per minute one API key (or one session token) may make."""
    rate_per_conversation_per_min: int = Field(default=30, gt=0)
    """Customer messages per minute one conversation may send."""
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    """Larger requests are refused with 413 before they are read."""

    wechat_token: SecretStr | None = None
    """The Official Account's server token; setting it turns the WeChat channel on (``/wechat``)."""
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    """For the customer-service message API (late replies, human agents' replies)."""
    wechat_aes_key: SecretStr | None = None
    """EncodingAESKey (43 characters): set it for the encrypted (safe) and compatible message modes."""
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_reply_within_s: float = Field(default=4.5, gt=0, lt=5)
    """WeChat waits 5 s for a passive reply; after this the answer goes out through the API instead."""
    wechat_max_reply_chars: int = Field(default=600, ge=50, le=2000)
    """Longer replies are split into several messages at sentence ends."""

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.wechat_aes_key is not None and len(self.wechat_aes_key.get_secret_value()) != 43:
            raise ConfigError("KEFU_WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        if self.redis_url is not None and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("KEFU_REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if self.chroma_url is not None and not self.chroma_url.startswith(("http://", "https://")):
            raise ConfigError("KEFU_CHROMA_URL must be an http:// or https:// URL")
        for url in self.llm_base_urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"KEFU_LLM_BASE_URLS: {url!r} is not an http:// or https:// URL")
        if self.llm_backend != "llamacpp" and not (self.llm_base_url or self.llm_base_urls):
            raise ConfigError(
                f"KEFU_LLM_BASE_URL or KEFU_LLM_BASE_URLS is required with KEFU_LLM_BACKEND={self.llm_backend}"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'kefu.db'}"

    @property
    def on_postgres(self) -> bool:
        """Whether the database is PostgreSQL (checkpoints then live in it as well)."""
        return self.resolved_database_url.startswith(("postgresql", "postgres:"))

    @property
    def libpq_url(self) -> str:
        """The database URL as PostgreSQL's own clients take it (no SQLAlchemy driver suffix).

        Raises:
            ConfigError: the database is not PostgreSQL.
        """
        if not self.on_postgres:
            raise ConfigError("the database is not PostgreSQL")
        scheme, rest = self.resolved_database_url.split("://", 1)
        return f"postgresql://{rest}" if scheme.startswith("postgresql") else self.resolved_database_url

    @property
    def endpoints(self) -> list[str]:
        """The configured OpenAI-compatible LLM endpoints (``llm_base_urls``, else ``llm_base_url``)."""
        if self.llm_base_urls:
            return list(self.llm_base_urls)
        return [self.llm_base_url] if self.llm_base_url else []

    @property
    def intent_models(self) -> Path:
        """Root of the versioned intent models."""
        return self.intent_model_dir or self.data_dir / "models" / "intents"

    @property
    def vault_key_path(self) -> Path:
        """The vault key file used when ``KEFU_VAULT_KEY`` is not set."""
        return self.vault_key_file or self.data_dir / "vault.key"

    @property
    def kb_path(self) -> Path:
        """The knowledge base directory."""
        return self.kb_dir or self.data_dir / "kb"

    @property
    def secret_key_path(self) -> Path:
        """The file of the signing secret when ``KEFU_SECRET_KEY`` is not set."""
        return self.secret_key_file or self.data_dir / "secret.key"

    @property
    def insights_path(self) -> Path:
        """The directory of the insight models and plots."""
        return self.insights_dir or self.data_dir / "insights"

    @property
    def checkpoint_path(self) -> Path:
        """SQLite file of LangGraph's conversation checkpoints."""
        return self.data_dir / "conversations.sqlite"
