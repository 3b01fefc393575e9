"""The PII vault: encrypted at rest, keyed from settings, expiring with retention, rotatable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from core import vault as vault_module
from core.db import VaultEntryRow, make_engine
from core.settings import Settings
from core.vault import PiiVault, VaultKeyError, generate_key, key_fingerprint, vault_keys, write_key_file

PHONE = "13812345678"


@pytest.fixture
def engine(make_database_url: Callable[..., str]) -> Engine:
    return make_engine(make_database_url())


def test_values_are_encrypted_at_rest_and_come_back(engine: Engine, tmp_path: Path) -> None:
    vault = PiiVault(engine, [generate_key()], timedelta(days=30))
    vault.add("c1", {"<CN_MOBILE_1>": PHONE, "<EMAIL_ADDRESS_1>": "wang.fang@example.cn"})
    vault.add("c2", {"<CN_MOBILE_1>": "13900001111"})
    assert vault.entries("c1") == {"<CN_MOBILE_1>": PHONE, "<EMAIL_ADDRESS_1>": "wang.fang@example.cn"}
    assert vault.entries("c2") == {"<CN_MOBILE_1>": "13900001111"}
    assert vault.entries("nobody") == {}
    if engine.dialect.name == "sqlite":  # every byte of the file and its write-ahead log
        database = engine.url.database
        assert database is not None
        raw = b"".join(path.read_bytes() for path in Path(database).parent.glob(Path(database).name + "*"))
    else:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT * FROM pii_vault")).all()
        raw = b"".join(
            bytes(value) if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
        )
    engine.dispose()
    assert PHONE.encode() not in raw and b"wang.fang" not in raw
    assert b"<CN_MOBILE_1>" in raw  # placeholders are not secret


def test_known_placeholders_keep_their_first_value(engine: Engine) -> None:
    vault = PiiVault(engine, [generate_key()], timedelta(days=30))
    vault.add("c1", {"<CN_MOBILE_1>": PHONE})
    vault.add("c1", {"<CN_MOBILE_1>": "13900001111", "<CN_MOBILE_2>": "13900001111"})
    assert vault.entries("c1") == {"<CN_MOBILE_1>": PHONE, "<CN_MOBILE_2>": "13900001111"}


def test_entries_expire_with_the_conversations_retention(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = PiiVault(engine, [generate_key()], timedelta(days=1))
    start = vault_module._now()
    vault.add("old", {"<CN_MOBILE_1>": PHONE})
    vault.add("busy", {"<CN_MOBILE_1>": "13900001111"})
    monkeypatch.setattr(vault_module, "_now", lambda: start + timedelta(hours=20))
    vault.add("busy", {})  # a new turn extends the whole conversation's retention
    monkeypatch.setattr(vault_module, "_now", lambda: start + timedelta(hours=30))
    assert vault.entries("old") == {}  # expired entries are never returned, even before a purge
    assert vault.entries("busy") == {"<CN_MOBILE_1>": "13900001111"}
    assert vault.purge_expired() == 1
    with Session(engine) as session:
        assert session.scalars(select(VaultEntryRow.conversation_id)).all() == ["busy"]


def test_forget_erases_one_conversation(engine: Engine) -> None:
    vault = PiiVault(engine, [generate_key()], timedelta(days=30))
    vault.add("c1", {"<CN_MOBILE_1>": PHONE, "<PERSON_1>": "王芳"})
    vault.add("c2", {"<CN_MOBILE_1>": PHONE})
    assert vault.forget("c1") == 2
    assert vault.entries("c1") == {} and vault.entries("c2") == {"<CN_MOBILE_1>": PHONE}


def test_a_different_key_is_refused_at_start_up(engine: Engine) -> None:
    old = generate_key()
    PiiVault(engine, [old], timedelta(days=30)).add("c1", {"<CN_MOBILE_1>": PHONE})
    new = generate_key()
    with pytest.raises(VaultKeyError) as refused:
        PiiVault(engine, [new], timedelta(days=30))
    message = str(refused.value)
    assert key_fingerprint(new) in message and key_fingerprint(old) in message
    assert "KEFU_VAULT_OLD_KEYS" in message and "kefu vault rotate" in message


def test_rotation_re_encrypts_with_the_new_key(engine: Engine) -> None:
    old, new = generate_key(), generate_key()
    PiiVault(engine, [old], timedelta(days=30)).add("c1", {"<CN_MOBILE_1>": PHONE})
    with Session(engine) as session:
        before = session.scalars(select(VaultEntryRow.token)).one()
    migrating = PiiVault(engine, [new, old], timedelta(days=30))
    assert migrating.needs_rotation
    assert migrating.entries("c1") == {"<CN_MOBILE_1>": PHONE}  # old entries still open meanwhile
    assert migrating.rotate() == 1
    with Session(engine) as session:
        assert session.scalars(select(VaultEntryRow.token)).one() != before
    rotated = PiiVault(engine, [new], timedelta(days=30))  # the old key is no longer needed
    assert not rotated.needs_rotation
    assert rotated.entries("c1") == {"<CN_MOBILE_1>": PHONE}
    with pytest.raises(VaultKeyError):
        PiiVault(engine, [old], timedelta(days=30))


def test_a_tampered_entry_stays_a_placeholder(engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    vault = PiiVault(engine, [generate_key()], timedelta(days=30))
    vault.add("c1", {"<CN_MOBILE_1>": PHONE, "<CN_MOBILE_2>": "13900001111"})
    with Session(engine) as session, session.begin():
        session.execute(
            update(VaultEntryRow).where(VaultEntryRow.placeholder == "<CN_MOBILE_2>").values(token=b"gAAAAAbogus")
        )
    assert vault.entries("c1") == {"<CN_MOBILE_1>": PHONE}
    assert "cannot be decrypted" in caplog.text


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path, _env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_no_key_is_a_clear_error_never_plaintext(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match=r"no PII vault key: set KEFU_VAULT_KEY .*kefu vault init"):
        vault_keys(_settings(tmp_path))


def test_a_malformed_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(VaultKeyError, match="KEFU_VAULT_KEY is malformed"):
        vault_keys(_settings(tmp_path, vault_key=SecretStr("hunter2")))
    good = generate_key()
    with pytest.raises(VaultKeyError, match=r"KEFU_VAULT_OLD_KEYS \(entry 2\) is malformed"):
        vault_keys(_settings(tmp_path, vault_key=SecretStr(good), vault_old_keys=SecretStr(f"{good},nope")))


def test_the_key_comes_from_the_environment_first_then_the_key_file(tmp_path: Path) -> None:
    assert write_key_file(tmp_path / "vault.key")
    assert not write_key_file(tmp_path / "vault.key")  # never overwritten
    from_file = (tmp_path / "vault.key").read_text().strip()
    assert (tmp_path / "vault.key").stat().st_mode & 0o777 == 0o600
    assert vault_keys(_settings(tmp_path)) == [from_file]
    env_key, old = generate_key(), generate_key()
    keys = vault_keys(_settings(tmp_path, vault_key=SecretStr(env_key), vault_old_keys=SecretStr(f" {old} ,")))
    assert keys == [env_key, old]
