"""The ``kefu`` command line in ``serving.cli``, driven through Typer's test runner.

Nothing here starts a model server or reaches the network: ``serve`` and ``chat`` are only
checked in ``--help``, and ``models fetch`` runs with a stand-in for ``fetch``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from agent.machine import DialogueMachine
from core.db import OrderRow, make_engine
from core.errors import ModelError
from core.vault import generate_key, key_fingerprint
from serving import cli
from serving.cli import app
from serving.models import MODELS, ModelSpec, model_path


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every path the CLI may touch into ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KEFU_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KEFU_VAULT_KEY", generate_key())
    return tmp_path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _flat(text: str) -> str:
    """Output with Rich's box drawing and line wrapping removed, for substring checks."""
    return re.sub(r"\s+", " ", re.sub(r"[│╭╮╰╯─┃┏┓┗┛━┡┩╇┳┴┬┼└┘┌┐]", " ", text))


def test_help_lists_every_command(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("serve", "chat", "seed", "graph", "models"):
        assert re.search(rf"\b{command}\b", result.output), command


def test_no_arguments_shows_help(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, [])
    assert "seed" in result.output
    assert "graph" in result.output


def test_models_help_lists_its_commands(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["models", "--help"])
    assert result.exit_code == 0, result.output
    assert "list" in result.output
    assert "fetch" in result.output


# ------------------------------------------------------------------------------------- graph


def test_graph_prints_the_state_machine_as_mermaid(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["graph"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "stateDiagram-v2"
    states = [state.id for state in DialogueMachine.states]
    assert set(states) == {"welcome", "need_confirm", "recommend", "answer", "close_deal", "handoff", "end"}
    for state in states:
        assert re.search(rf"\b{state}\b", result.output), state
    assert "need_confirm --> answer" in result.output
    assert "[*] --> welcome" in result.output
    assert "answer --> handoff" in result.output


# ------------------------------------------------------------------------------------- seed


def test_seed_creates_the_database_then_leaves_it_alone(runner: CliRunner, env: Path) -> None:
    db = env / "data" / "kefu.db"
    first = runner.invoke(app, ["seed"])
    assert first.exit_code == 0, first.output
    assert db.is_file()
    assert "created" in first.output
    assert "already present" not in first.output

    engine = make_engine(f"sqlite:///{db}")
    try:
        with Session(engine) as session:
            orders = session.scalar(select(func.count(OrderRow.id)))
    finally:
        engine.dispose()
    assert orders and orders >= 1100
    assert f"{orders} orders" in _flat(first.output)

    second = runner.invoke(app, ["seed"])
    assert second.exit_code == 0, second.output
    assert "already present" in second.output
    assert f"{orders} orders" in _flat(second.output)
    assert not (Path.cwd() / "var").exists()  # nothing landed in the working directory's default


def test_seed_reset_rebuilds(runner: CliRunner, env: Path) -> None:
    assert runner.invoke(app, ["seed"]).exit_code == 0
    result = runner.invoke(app, ["seed", "--reset"])
    assert result.exit_code == 0, result.output
    assert "created" in result.output


# ------------------------------------------------------------------------------------- models


def test_models_list_shows_both_models(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    for name in ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"):
        assert name in result.output
    assert set(MODELS) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"}


def test_models_list_shows_what_is_cached(runner: CliRunner, env: Path) -> None:
    def cached_column(output: str, name: str) -> str:
        row = next(line for line in output.splitlines() if name in line)
        return row.split("│")[2].strip()

    before = runner.invoke(app, ["models", "list"]).output
    assert cached_column(before, "qwen2.5-coder-0.5b") == "no"
    path = model_path(env / "cache", MODELS["qwen2.5-coder-0.5b"])
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF")
    after = runner.invoke(app, ["models", "list"]).output
    assert cached_column(after, "qwen2.5-coder-0.5b") == "yes"
    assert cached_column(after, "qwen2.5-coder-1.5b") == "no"


def test_models_fetch_rejects_an_unknown_model(runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_args: Any, **_kwargs: Any) -> Path:
        raise AssertionError("fetch must not run for an unknown model")

    monkeypatch.setattr(cli, "fetch", never)
    result = runner.invoke(app, ["models", "fetch", "--model", "nope"])
    assert result.exit_code != 0
    assert result.exit_code == 2  # a usage error
    text = _flat(result.output)
    assert "unknown model 'nope'" in text
    assert "qwen2.5-coder-1.5b" in text
    assert not (env / "cache").exists()


def test_models_fetch_prints_the_path(runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[ModelSpec, Path, bool]] = []

    def fake_fetch(spec: ModelSpec, cache_dir: Path, *, force: bool = False, **_kwargs: Any) -> Path:
        seen.append((spec, cache_dir, force))
        return model_path(cache_dir, spec)

    monkeypatch.setattr(cli, "fetch", fake_fetch)
    result = runner.invoke(app, ["models", "fetch", "--model", "qwen2.5-coder-0.5b"])
    assert result.exit_code == 0, result.output
    spec = MODELS["qwen2.5-coder-0.5b"]
    assert seen == [(spec, env / "cache", False)]
    assert result.output.strip().splitlines()[-1] == str(model_path(env / "cache", spec))


def test_models_fetch_passes_force_and_cache_dir(runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, Path, bool]] = []

    def fake_fetch(spec: ModelSpec, cache_dir: Path, *, force: bool = False, **_kwargs: Any) -> Path:
        seen.append((spec.name, cache_dir, force))
        return model_path(cache_dir, spec)

    monkeypatch.setattr(cli, "fetch", fake_fetch)
    other = env / "other-cache"
    result = runner.invoke(app, ["models", "fetch", "--force", "--cache-dir", str(other)])
    assert result.exit_code == 0, result.output
    assert seen == [("qwen2.5-coder-1.5b", other, True)]  # the default model


def test_models_fetch_reports_a_model_error(runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_fetch(*_args: Any, **_kwargs: Any) -> Path:
        raise ModelError("qwen2.5-coder-0.5b: checksum mismatch; nothing was installed")

    monkeypatch.setattr(cli, "fetch", failing_fetch)
    result = runner.invoke(app, ["models", "fetch", "--model", "qwen2.5-coder-0.5b"])
    assert result.exit_code == 1
    text = _flat(result.output)
    assert "error:" in text
    assert "checksum mismatch" in text


def test_chat_in_the_terminal_on_rules(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(
        app, ["chat", "--customer", "C0002", "--conversation", "cli-t", "--rules-only"], input="hello\nthanks, bye\n\n"
    )
    assert result.exit_code == 0, result.output
    assert "conversation cli-t as customer C0002" in _flat(result.output)
    assert "I'm Kefu" in result.output
    assert "end · goodbye" in _flat(result.output)


def test_chat_reports_bad_input_and_goes_on(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["chat", "--customer", "C9999", "--rules-only"], input="hello\n\n")
    assert result.exit_code == 0, result.output
    assert "unknown customer" in result.output


def test_audit_shows_how_each_turn_was_decided(runner: CliRunner, env: Path) -> None:
    chat = runner.invoke(
        app, ["chat", "--customer", "C0002", "--conversation", "aud-1", "--rules-only"], input="hello\n\n"
    )
    assert chat.exit_code == 0, chat.output
    result = runner.invoke(app, ["audit", "aud-1"])
    assert result.exit_code == 0, result.output
    assert "greeting" in result.output and "thresholds: accept=0.8" in _flat(result.output)
    assert runner.invoke(app, ["audit", "nope"]).exit_code == 1


def test_intents_train_and_eval_on_a_company_file(runner: CliRunner, env: Path) -> None:
    rows = [
        {"text": text, "label": label, "lang": "en"}
        for label, texts in {
            "refund": [
                "refund please",
                "i want my money back",
                "give me a refund",
                "refund my order",
                "money back now",
            ],
            "track": ["where is my parcel", "track my package", "parcel status", "where's my package", "tracking info"],
        }.items()
        for text in texts
    ]
    data = env / "company.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    trained = runner.invoke(app, ["intents", "train", "--data", str(data), "--out", str(env / "models")])
    assert trained.exit_code == 0, trained.output
    assert "trained on 10 examples, 2 intents" in _flat(trained.output)
    evaluated = runner.invoke(
        app, ["intents", "eval", "--data", str(data), "--model", str(env / "models"), "--plots", str(env / "plots")]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert "accuracy" in evaluated.output and "macro-F1" in evaluated.output and "p50" in evaluated.output
    assert (env / "plots" / "confusion.png").stat().st_size > 0
    assert (env / "plots" / "reliability.png").stat().st_size > 0

    # A reviewed drift proposal adds a new intent on top of the training data.
    gift = ["gift card balance", "use my gift card", "buy a gift card", "gift card expired", "redeem gift card"]
    extra = env / "reviewed.jsonl"
    extra.write_text("\n".join(json.dumps({"text": t, "label": "gift_card", "lang": "en"}) for t in gift), "utf-8")
    retrained = runner.invoke(
        app, ["intents", "train", "--data", str(data), "--extra", str(extra), "--out", str(env / "models")]
    )
    assert retrained.exit_code == 0, retrained.output
    assert "trained on 15 examples, 3 intents" in _flat(retrained.output)


def test_vault_init_creates_a_private_key_file_once(
    runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEFU_VAULT_KEY")
    first = runner.invoke(app, ["vault", "init"])
    assert first.exit_code == 0, first.output
    key_file = env / "data" / "vault.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_text().strip()
    assert key_fingerprint(key) in _flat(first.output)
    again = runner.invoke(app, ["vault", "init"])
    assert "already exists" in again.output and key_file.read_text().strip() == key
    status = runner.invoke(app, ["vault", "status"])
    assert status.exit_code == 0, status.output
    assert f"vault ok · key {key_fingerprint(key)}" in _flat(status.output)


def test_a_missing_vault_key_stops_chat_and_serve_with_a_clear_error(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEFU_VAULT_KEY")
    for argv in (["kefu", "chat", "--rules-only"], ["kefu", "serve", "--port", "8999"]):
        monkeypatch.setattr("sys.argv", argv)
        with pytest.raises(SystemExit) as stopped:
            cli.main()
        assert stopped.value.code == 1
        output = _flat(capsys.readouterr().out)
        assert "no PII vault key: set KEFU_VAULT_KEY" in output and "kefu vault init" in output
    assert not (env / "data" / "vault.key").exists()


def test_vault_rotate_moves_the_vault_to_the_new_key(
    runner: CliRunner, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = generate_key()
    monkeypatch.setenv("KEFU_VAULT_KEY", old)
    chat = runner.invoke(
        app,
        ["chat", "--customer", "C0002", "--conversation", "rot", "--rules-only"],
        input="call me on 13812345678\n\n",
    )
    assert chat.exit_code == 0, chat.output
    new = generate_key()
    monkeypatch.setenv("KEFU_VAULT_KEY", new)
    monkeypatch.setattr("sys.argv", ["kefu", "vault", "status"])
    with pytest.raises(SystemExit):
        cli.main()
    refused = _flat(capsys.readouterr().out)
    assert f"sealed with key {key_fingerprint(old)}" in refused and "KEFU_VAULT_OLD_KEYS" in refused

    monkeypatch.setenv("KEFU_VAULT_OLD_KEYS", old)
    assert "sealed with an old key" in _flat(runner.invoke(app, ["vault", "status"]).output)
    rotated = runner.invoke(app, ["vault", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert f"re-encrypted 1 entries with key {key_fingerprint(new)}" in _flat(rotated.output)
    monkeypatch.delenv("KEFU_VAULT_OLD_KEYS")
    assert "vault ok" in _flat(runner.invoke(app, ["vault", "status"]).output)
    erased = runner.invoke(app, ["vault", "purge", "--conversation", "rot"])
    assert "erased 1 entries" in _flat(erased.output)


def _doc(path: Path, title: str, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"---\ntitle: {title}\nlang: en\ncategory: returns\n---\n# {title}\n## Rule\n{body}\n")


def test_kb_ingest_is_idempotent_reports_bad_files_and_prunes(runner: CliRunner, env: Path) -> None:
    docs = env / "docs"
    _doc(docs / "returns.md", "Returns", "Unopened items can be returned within 7 days of delivery.")
    _doc(docs / "gifts.md", "Gift wrapping", "Gift wrapping costs 10 yuan per parcel.")
    (docs / "broken.csv").write_text("q,a\nhello,world\n")

    first = runner.invoke(app, ["kb", "ingest", str(docs)])
    assert first.exit_code == 1  # one file failed; the others are in
    assert "broken.csv" in first.output and "added" in first.output
    assert "2 chunks added" in first.output

    (docs / "broken.csv").unlink()
    again = runner.invoke(app, ["kb", "ingest", str(docs)])
    assert again.exit_code == 0, again.output
    assert "0 chunks added, 0 removed" in again.output

    _doc(docs / "returns.md", "Returns", "Unopened items can be returned within 14 days of delivery.")
    (docs / "gifts.md").unlink()
    changed = runner.invoke(app, ["kb", "ingest", str(docs), "--prune"])
    assert changed.exit_code == 0, changed.output
    assert "updated" in changed.output and "pruned" in changed.output and "gifts.md" in _flat(changed.output)

    query = runner.invoke(app, ["kb", "query", "how long can I return things?"])
    assert query.exit_code == 0, query.output
    assert "returns.md#" in _flat(query.output) and "14 days" in _flat(query.output)
    assert "Gift" not in query.output


def test_kb_ingest_rejects_a_missing_path(runner: CliRunner, env: Path) -> None:
    result = runner.invoke(app, ["kb", "ingest", str(env / "nowhere")])
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


def test_kb_graph_and_recommend_use_the_seeded_catalog(runner: CliRunner, env: Path) -> None:
    assert runner.invoke(app, ["seed"]).exit_code == 0
    graph = runner.invoke(app, ["kb", "graph"])
    assert graph.exit_code == 0, graph.output
    assert re.search(r"Product\s*│\s*55", graph.output)
    assert "ACCESSORY_OF" in graph.output
    recommend = runner.invoke(app, ["kb", "recommend", "家里有猫，掉毛严重"])
    assert recommend.exit_code == 0, recommend.output
    assert "HOM-001" in _flat(recommend.output) and "SUITS" in _flat(recommend.output)


def test_api_keys_are_created_listed_and_revoked(runner: CliRunner, env: Path) -> None:
    created = runner.invoke(app, ["keys", "create", "--name", "shop-app", "--channel", "app"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("kf_") and "not shown again" in created.output
    key_id = key.split("_")[1]
    listed = runner.invoke(app, ["keys", "list"])
    assert key_id in listed.output and key not in listed.output and "shop-app" in listed.output
    assert runner.invoke(app, ["keys", "revoke", key_id]).exit_code == 0
    engine = make_engine(f"sqlite:///{env / 'data' / 'kefu.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT revoked_at FROM api_keys").scalar_one() is not None
    unknown = runner.invoke(app, ["keys", "revoke", "nope"])
    assert unknown.exit_code == 1 and "no API key" in unknown.output


def test_agents_are_added_with_a_hashed_password_and_disabled(runner: CliRunner, env: Path) -> None:
    added = runner.invoke(
        app, ["agents", "add", "lin", "--name", "Lin", "--role", "agent"], input="s3cret-pass\ns3cret-pass\n"
    )
    assert added.exit_code == 0, added.output
    short = runner.invoke(app, ["agents", "add", "wu", "--password", "short"])
    assert short.exit_code == 2 and "8 characters" in short.output
    role = runner.invoke(app, ["agents", "add", "wu", "--role", "boss", "--password", "long-enough"])
    assert role.exit_code == 2
    engine = make_engine(f"sqlite:///{env / 'data' / 'kefu.db'}")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT password_hash FROM agents WHERE id = 'lin'").scalar_one()
    assert stored.startswith("scrypt$") and "s3cret-pass" not in stored
    assert "Lin" in runner.invoke(app, ["agents", "list"]).output
    assert runner.invoke(app, ["agents", "disable", "lin"]).exit_code == 0
    assert "no" in _flat(runner.invoke(app, ["agents", "list"]).output).split("Lin")[1]


def test_seed_creates_a_demo_console_login_once(runner: CliRunner, env: Path) -> None:
    first = runner.invoke(app, ["seed"])
    assert first.exit_code == 0 and "demo console login: demo / " in first.output
    second = runner.invoke(app, ["seed"])
    assert "demo console login" not in second.output


def test_eval_lists_the_evaluations_and_refuses_unknown_ones(runner: CliRunner) -> None:
    listing = runner.invoke(app, ["eval"])
    assert listing.exit_code == 0
    for name in ("scenarios", "tau2", "redteam", "reliability", "kb", "pii-leak"):
        assert name in listing.output
    assert runner.invoke(app, ["eval", "nope"]).exit_code == 2


def test_eval_bench_and_report_run_their_modules_with_the_options_given(env: Path, runner: CliRunner) -> None:
    """Evals sit beside serving, so the CLI runs them as their own process and passes every option on."""
    readme = env / "README.md"
    readme.write_text("# Kefu\n\n## Development\n")
    options = ["--results", str(env / "none"), "--readme", str(readme), "--plots", str(env / "plots")]
    assert runner.invoke(app, ["report", *options, "--check"]).exit_code == 1  # no Results section yet
    assert runner.invoke(app, ["report", *options]).exit_code == 0
    assert "## Results" in readme.read_text() and "Not run yet" in readme.read_text()
    assert runner.invoke(app, ["report", *options, "--check"]).exit_code == 0
    assert runner.invoke(app, ["bench", "--help"]).exit_code == 0
    assert runner.invoke(app, ["eval", "scenarios", "--help"]).exit_code == 0


def test_models_serve_needs_a_fetched_model(env: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["models", "serve", "--model", "qwen2.5-coder-0.5b"])
    assert result.exit_code != 0
    assert "kefu models fetch" in str(result.exception) + result.output


def test_prune_keeps_each_conversations_latest_checkpoint(env: Path, runner: CliRunner) -> None:
    import sqlite3

    from core.settings import Settings
    from serving.service import KefuService

    service = KefuService.start(Settings(), use_llm=False)
    try:
        for text in ("hi", "where is my order?", "thanks"):
            service.chat("prune-1", "C0001", text)
    finally:
        service.close()
    checkpoints = Settings().checkpoint_path

    def count() -> int:
        with sqlite3.connect(checkpoints) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0])

    assert count() == 3
    result = runner.invoke(app, ["prune", "--vacuum"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 superseded checkpoints" in result.output and "vacuumed" in result.output
    assert count() == 1
