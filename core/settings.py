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
    """Any SQLAlchemy URL; defaults to SQLite in ``data_dir``."""

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
        if self.llm_backend != "llamacpp" and not self.llm_base_url:
            raise ConfigError(f"KEFU_LLM_BASE_URL is required with KEFU_LLM_BACKEND={self.llm_backend}")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to SQLite in ``data_dir``."""
        return self.database_url or f"sqlite:///{self.data_dir / 'kefu.db'}"

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
