"""``kefu experiments report``: the A/B outcomes per variant and their significance, as tables or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.db import make_engine
from core.settings import Settings
from insights.experiments import Experiments
from insights.outcomes import ExperimentReport

__all__ = ["experiments_app"]

experiments_app = typer.Typer(help="A/B experiments: outcomes per variant and significance.", no_args_is_help=True)
_console = Console()


@experiments_app.command("report")
def report(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    file: Annotated[
        Path | None, typer.Option(help="Experiments file (default KEFU_EXPERIMENTS_FILE).", dir_okay=False)
    ] = None,
) -> None:
    """Containment, conversion and satisfaction per variant, each variant tested against the control.

    Reads the conversation log of the configured database. Arms below the experiment's minimum
    sample are reported as "not enough data", without a p-value.
    """
    settings = Settings()
    path = file or settings.experiments_file
    if path is None:
        _console.print("no experiments file: set KEFU_EXPERIMENTS_FILE or pass --file")
        raise typer.Exit(1)
    experiments = Experiments.load(path)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    reports = experiments.report(make_engine(settings.resolved_database_url))
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in reports], ensure_ascii=False, indent=2))
        return
    for item in reports:
        _print(item)


def _print(item: ExperimentReport) -> None:
    state = "active" if item.active else "ended"
    _console.print(f"[bold]{item.experiment}[/bold] ({state}; control {item.control}) {item.description}")
    outcomes = Table("variant", "weight", "conversations", "contained", "converted", "rated", "satisfaction")
    for v in item.variants:
        outcomes.add_row(
            v.variant,
            f"{v.weight:g}",
            str(v.conversations),
            _pct(v.containment_rate),
            _pct(v.conversion_rate),
            str(v.rated),
            "-" if v.satisfaction_mean is None else f"{v.satisfaction_mean:.2f}",
        )
    _console.print(outcomes)
    tests = Table("metric", "variant", "difference", "95% CI", "p", "test", "verdict")
    for c in item.comparisons:
        points = c.metric != "satisfaction"
        interval = "-"
        if c.ci_low is not None and c.ci_high is not None:
            interval = f"{_diff(c.ci_low, points)} to {_diff(c.ci_high, points)}"
        tests.add_row(
            c.metric,
            c.variant,
            "-" if c.difference is None else _diff(c.difference, points),
            interval,
            "-" if c.p_value is None else f"{c.p_value:.3g}",
            c.test or "-",
            c.verdict.replace("_", " "),
        )
    _console.print(tests)
    _console.print(
        f"min {item.min_per_variant} conversations / {item.min_rated} ratings per variant; alpha {item.alpha:g}"
        + (" (Bonferroni-corrected per variant)" if len(item.variants) > 2 else "")
    )


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def _diff(value: float, points: bool) -> str:
    """A rate difference in percentage points, a rating difference as is."""
    return f"{value * 100:+.1f} pts" if points else f"{value:+.2f}"
