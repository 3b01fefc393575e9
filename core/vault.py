"""The PII vault: each conversation's placeholders and the real values behind them, encrypted at rest.

The redactor replaces personal data with placeholders such as ``<CN_MOBILE_1>``; the vault is the
only place the real values are kept. Every value is a Fernet token (AES-128-CBC with an
HMAC-SHA256, from ``cryptography``) under a key that comes from settings, never from the
database. Entries expire with their conversation: each turn moves the conversation's expiry to
now plus the retention period, and expired entries are deleted (their placeholders then stay
placeholders in the history).

The vault refuses to run in the clear. With no key configured it fails at start-up; with a key
that does not open the existing vault (a rotated or mistyped key) it fails at start-up too and says
how to rotate: put the previous key in ``KEFU_VAULT_OLD_KEYS`` and run ``kefu vault rotate``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import VaultEntryRow, VaultMetaRow
from core.errors import ConfigError
from core.settings import Settings

__all__ = ["PiiVault", "VaultKeyError", "generate_key", "key_fingerprint", "vault_keys", "write_key_file"]

log = logging.getLogger(__name__)

_CHECK_PLAINTEXT = b"kefu-pii-vault"
_CHECK = "check"
_FINGERPRINT = "fingerprint"
_PURGE_EVERY = timedelta(minutes=1)


class VaultKeyError(ConfigError):
    """No vault key, a malformed one, or one that does not open the vault."""


def generate_key() -> str:
    """A new random vault key (32 bytes, URL-safe base64), for ``KEFU_VAULT_KEY`` or a key file."""
    return Fernet.generate_key().decode()


def key_fingerprint(key: str | bytes) -> str:
    """The first 12 hex digits of the key's SHA-256: safe to print, enough to tell keys apart."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(raw.strip()).hexdigest()[:12]


def write_key_file(path: Path) -> bool:
    """Create ``path`` holding a new key, readable by its owner only; False if it already exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(generate_key() + "\n")
    return True


def vault_keys(settings: Settings) -> list[str]:
    """The keys to open the vault with: the current one first, then ``KEFU_VAULT_OLD_KEYS``.

    The current key is ``KEFU_VAULT_KEY`` if set, else the contents of ``settings.vault_key_path``.

    Raises:
        VaultKeyError: no key is configured, or a key is malformed.
    """
    if settings.vault_key is not None and settings.vault_key.get_secret_value().strip():
        current, source = settings.vault_key.get_secret_value().strip(), "KEFU_VAULT_KEY"
    elif settings.vault_key_path.is_file():
        path = settings.vault_key_path
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("vault key file %s is readable by other users; chmod 600 it", path)
        current, source = path.read_text().strip(), str(path)
    else:
        raise VaultKeyError(
            "no PII vault key: set KEFU_VAULT_KEY (make one with `kefu vault keygen`) or run "
            f"`kefu vault init` to create {settings.vault_key_path}. Kefu never stores personal data unencrypted."
        )
    old = settings.vault_old_keys.get_secret_value() if settings.vault_old_keys is not None else ""
    keys = [current, *(key.strip() for key in old.split(",") if key.strip())]
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError as exc:
            where = source if index == 0 else f"KEFU_VAULT_OLD_KEYS (entry {index})"
            raise VaultKeyError(
                f"the vault key from {where} is malformed: it must be 32 bytes in URL-safe base64 "
                "(`kefu vault keygen` prints one)"
            ) from exc
    return keys


class PiiVault:
    """Placeholder ↔ real value per conversation, encrypted with Fernet, expiring with retention."""

    def __init__(self, engine: Engine, keys: Sequence[str], retention: timedelta) -> None:
        """Open the vault in ``engine``'s database, checking that ``keys[0]`` is the key that sealed it.

        Args:
            engine: The database with the ``pii_vault`` tables.
            keys: The current key first, then older keys that may still open entries.
            retention: How long after a conversation's last turn its entries are kept.

        Raises:
            VaultKeyError: ``keys`` is empty, or none of them opens the existing vault.
        """
        if not keys:
            raise VaultKeyError("no PII vault key")
        self._engine = engine
        self._current = Fernet(keys[0])
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._fingerprint = key_fingerprint(keys[0])
        self.retention = retention
        self.needs_rotation = False
        """The vault was sealed with an old key: ``rotate()`` re-encrypts it with the current one."""
        self._purge_lock = threading.Lock()
        self._next_purge = datetime.min
        self._open()

    @classmethod
    def from_settings(cls, engine: Engine, settings: Settings) -> PiiVault:
        """Open the vault with the keys and the retention period from ``settings``."""
        return cls(engine, vault_keys(settings), timedelta(days=settings.retention_days))

    @property
    def fingerprint(self) -> str:
        """Fingerprint of the current key."""
        return self._fingerprint

    def _open(self) -> None:
        try:
            self._open_once()
        except IntegrityError:  # another replica sealed this new vault at the same moment: check against its seal
            self._open_once()

    def _open_once(self) -> None:
        with Session(self._engine) as session, session.begin():
            meta = {row.name: row.value for row in session.scalars(select(VaultMetaRow))}
            if _CHECK not in meta:
                count = session.scalar(select(func.count()).select_from(VaultEntryRow)) or 0
                if count:
                    raise VaultKeyError(f"the vault holds {count} entries but no key check; refusing to guess")
                self._seal(session)
                return
            sealed_with = meta.get(_FINGERPRINT, b"?").decode()
            if _opens(self._current, meta[_CHECK]):
                return
            if not _opens(self._fernet, meta[_CHECK]):
                raise VaultKeyError(
                    f"the vault key (fingerprint {self._fingerprint}) does not open this vault, which was "
                    f"sealed with key {sealed_with}. If the key was rotated, set KEFU_VAULT_OLD_KEYS to the "
                    "previous key and run `kefu vault rotate`."
                )
            self.needs_rotation = True
            log.warning(
                "the PII vault is sealed with an old key (%s); run `kefu vault rotate` to re-encrypt it with %s",
                sealed_with,
                self._fingerprint,
            )

    def _seal(self, session: Session) -> None:
        session.merge(VaultMetaRow(name=_CHECK, value=self._current.encrypt(_CHECK_PLAINTEXT)))
        session.merge(VaultMetaRow(name=_FINGERPRINT, value=self._fingerprint.encode()))

    def entries(self, conversation_id: str) -> dict[str, str]:
        """The conversation's unexpired placeholders and their real values."""
        now = _now()
        with Session(self._engine) as session:
            rows = session.execute(
                select(VaultEntryRow.placeholder, VaultEntryRow.token).where(
                    VaultEntryRow.conversation_id == conversation_id, VaultEntryRow.expires_at > now
                )
            ).all()
        found: dict[str, str] = {}
        for placeholder, token in rows:
            try:
                found[placeholder] = self._fernet.decrypt(token).decode()
            except InvalidToken:
                log.error(
                    "vault entry %s of %s cannot be decrypted; it stays a placeholder", placeholder, conversation_id
                )
        return found

    def add(self, conversation_id: str, entries: Mapping[str, str]) -> None:
        """Store the placeholders not yet in the vault and extend the conversation's retention."""
        now = _now()
        expires = now + self.retention
        with Session(self._engine) as session, session.begin():
            known = set(
                session.scalars(
                    select(VaultEntryRow.placeholder).where(VaultEntryRow.conversation_id == conversation_id)
                )
            )
            session.add_all(
                VaultEntryRow(
                    conversation_id=conversation_id,
                    placeholder=placeholder,
                    token=self._current.encrypt(value.encode()),
                    created_at=now,
                    expires_at=expires,
                )
                for placeholder, value in entries.items()
                if placeholder not in known
            )
            session.execute(
                update(VaultEntryRow).where(VaultEntryRow.conversation_id == conversation_id).values(expires_at=expires)
            )
        self.purge_expired(now, every=_PURGE_EVERY)

    def purge_expired(self, now: datetime | None = None, *, every: timedelta | None = None) -> int:
        """Delete expired entries and return how many; with ``every``, at most once per that interval."""
        now = now or _now()
        with self._purge_lock:
            if every is not None and now < self._next_purge:
                return 0
            self._next_purge = now + (every or timedelta(0))
        with Session(self._engine) as session, session.begin():
            result = session.execute(delete(VaultEntryRow).where(VaultEntryRow.expires_at <= now))
        purged = int(getattr(result, "rowcount", 0) or 0)
        if purged:
            log.info("purged %d expired vault entries", purged)
        return purged

    def forget(self, conversation_id: str) -> int:
        """Delete a conversation's entries now (a customer's erasure request); returns how many."""
        with Session(self._engine) as session, session.begin():
            result = session.execute(delete(VaultEntryRow).where(VaultEntryRow.conversation_id == conversation_id))
        return int(getattr(result, "rowcount", 0) or 0)

    def rotate(self) -> int:
        """Re-encrypt every entry and the key check with the current key; returns the entries rotated."""
        with Session(self._engine) as session, session.begin():
            rows = list(session.scalars(select(VaultEntryRow)))
            for row in rows:
                row.token = self._fernet.rotate(row.token)
            self._seal(session)
        self.needs_rotation = False
        log.info("re-encrypted %d vault entries with key %s", len(rows), self._fingerprint)
        return len(rows)


def _opens(fernet: Fernet | MultiFernet, token: bytes) -> bool:
    try:
        fernet.decrypt(token)
    except InvalidToken:
        return False
    return True


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)
