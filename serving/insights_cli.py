"""``kefu insights``: segments, training and evaluating the churn and repurchase models, one customer's 360°."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.db import make_engine
from core.errors import KefuError, NotFoundError
from core.settings import Settings
from core.types import CustomerId, CustomerInsight, Prediction
from insights.features import features_at
from insights.pipeline import SHUFFLED_RUNS, evaluate_models, train_models
from insights.profile import Insights
from insights.segments import Segmentation
from insights.timeline import History

__all__ = ["insights_app"]

insights_app = typer.Typer(
    help="Customer insights: segments, churn and repurchase models, one customer's view.", no_args_is_help=True
)
_console = Console()
_TRAITS = {
    "recency_days": "days since order",
    "orders_365d": "orders/yr",
    "monetary_365d": "spend/yr",
    "return_rate": "returns",
    "complaints_90d": "complaints/90d",
    "tenure_days": "tenure days",
}
_DIGITS = {
    "recency_days": 0,
    "orders_365d": 1,
    "monetary_365d": 0,
    "return_rate": 2,
    "complaints_90d": 2,
    "tenure_days": 0,
}


def _engine(settings: Settings) -> Any:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.resolved_database_url)


def _fail(exc: KefuError) -> typer.Exit:
    _console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@insights_app.command("segments")
def segments(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    k: Annotated[int, typer.Option(help="Number of segments (KMeans clusters).")] = 5,
    seed: Annotated[int, typer.Option(help="KMeans random state.")] = 0,
) -> None:
    """RFM clustering of every customer into named segments: size, traits and a description."""
    engine = _engine(Settings())
    try:
        history = History.load(engine)
        table = features_at(history, history.latest_datetime() + timedelta(seconds=1))
        found = Segmentation.fit(table, k=k, seed=seed).segments
    except KefuError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    if as_json:
        body = {"at": table.at.isoformat(), "customers": len(table.customer_ids)}
        typer.echo(json.dumps({**body, "segments": [s.model_dump() for s in found]}, ensure_ascii=False, indent=2))
        return
    grid = Table("segment", "size", *_TRAITS.values(), title=f"{len(table.customer_ids)} customers at {table.at}")
    for segment in found:
        traits = [f"{segment.traits[name]:,.{digits}f}" for name, digits in _DIGITS.items()]
        grid.add_row(f"{segment.name}\n{segment.label_en} {segment.label_zh}", str(segment.size), *traits)
    _console.print(grid)
    for segment in found:
        _console.print(f"[bold]{segment.name}[/bold]: {segment.description}", highlight=False)


@insights_app.command("train")
def train(
    seed: Annotated[int, typer.Option(help="Seed of the gradient boosting (same seed, same models).")] = 0,
    snapshot_days: Annotated[int, typer.Option(help="Days between training snapshots.", min=1)] = 7,
) -> None:
    """Train the churn (30 days) and repurchase (3 days) models with a time-based split; print test metrics."""
    settings = Settings()
    engine = _engine(settings)
    try:
        models = train_models(engine, settings.insights_path, seed=seed, step_days=snapshot_days)
    except KefuError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    _console.print(_metrics_table({m.target: m.meta["metrics"] for m in models}))
    for model in models:
        periods = model.meta["periods"]
        spans = ", ".join(
            f"{name} {p['first'][:10]}..{p['last'][:10]} ({p['rows']} rows, {p['positives']} positive)"
            for name, p in periods.items()
        )
        _console.print(f"[bold]{model.version}[/bold]: {spans}", highlight=False)
    _console.print(f"models written to {settings.insights_path}", highlight=False)


@insights_app.command("eval")
def evaluate(
    plots: Annotated[Path | None, typer.Option(help="Folder for ROC, reliability and contribution PNGs.")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the full report as JSON here.")] = None,
    shuffled_labels: Annotated[
        bool, typer.Option(help="Also train on permuted labels: a control whose test AUC must be near 0.5.")
    ] = False,
    runs: Annotated[int, typer.Option(help="Permutations for --shuffled-labels.", min=1)] = SHUFFLED_RUNS,
) -> None:
    """Evaluate the saved models on their test period: AUC, precision@k, Brier, calibration, baseline."""
    settings = Settings()
    engine = _engine(settings)
    try:
        reports = evaluate_models(
            engine, settings.insights_path, plots=plots, shuffled_runs=runs if shuffled_labels else 0
        )
    except KefuError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    _console.print(_metrics_table({target: report["metrics"] for target, report in reports.items()}))
    for target, report in reports.items():
        _print_details(target, report)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(reports, indent=2, ensure_ascii=False), encoding="utf-8")
        _console.print(f"wrote {json_file}", highlight=False)


@insights_app.command("customer")
def customer(
    customer_id: Annotated[str, typer.Argument(help="Customer id, e.g. C0001.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """One customer's 360° insight: features, RFM, segment, churn and repurchase scores with their drivers."""
    settings = Settings()
    engine = _engine(settings)
    try:
        insight = Insights(engine, settings.insights_path).customer_insight(CustomerId(customer_id))
        if insight is None:
            raise NotFoundError(f"unknown customer {customer_id!r}")
    except KefuError as exc:
        raise _fail(exc) from exc
    finally:
        engine.dispose()
    if as_json:
        typer.echo(insight.model_dump_json(indent=2))
        return
    _print_insight(insight)


def _metrics_table(metrics: dict[str, dict[str, Any]]) -> Table:
    grid = Table("target", "score", "AUC", "P@10%", "P@20", "Brier", "ECE", title="test period")
    for target, m in metrics.items():
        model, base = m["model"], m["baseline"]
        grid.add_row(
            target,
            "model",
            *(f"{model[key]:.3f}" for key in ("auc", "precision_at_10pct", "precision_at_20", "brier", "ece")),
        )
        ranking = (f"{base[key]:.3f}" for key in ("auc", "precision_at_10pct", "precision_at_20"))
        grid.add_row("", f"baseline: {base['feature']}", *ranking, "-", "-")
        grid.add_row("", "positive rate", "", f"{model['prevalence']:.3f}", f"{model['prevalence']:.3f}", "", "")
    grid.caption = "precision@k: mean over the weekly test snapshots; random ranking scores the positive rate"
    return grid


def _print_details(target: str, report: dict[str, Any]) -> None:
    metrics = report["metrics"]
    _console.print(f"\n[bold]{report['version']}[/bold] ({metrics['model']['rows']} test rows)", highlight=False)
    reliability = Table("bin", "customers", "mean predicted", "observed", title=f"{target}: reliability")
    for row in metrics["model"]["reliability"]:
        if row["count"]:
            reliability.add_row(
                f"{row['low']:.1f}-{row['high']:.1f}",
                str(row["count"]),
                f"{row['mean_predicted']:.3f}",
                f"{row['observed']:.3f}",
            )
    _console.print(reliability)
    alternatives = metrics["calibration_alternatives"]
    _console.print(
        "calibration (ECE / Brier): "
        + ", ".join(f"{name} {v['ece']:.4f} / {v['brier']:.4f}" for name, v in alternatives.items())
        + " (sigmoid is used)",
        highlight=False,
    )
    top = list(metrics["mean_abs_contribution"].items())[:8]
    _console.print("top features (mean |log-odds|): " + ", ".join(f"{n} {v:.3f}" for n, v in top), highlight=False)
    control = report.get("shuffled_labels")
    if control is not None:
        runs = ", ".join(f"{auc:.3f}" for auc in control["auc"])
        _console.print(
            f"shuffled labels: AUC {control['auc_mean']:.3f} ± {control['auc_sd']:.3f} over {control['runs']} "
            f"runs ({runs}); the real model {metrics['model']['auc']:.3f}",
            highlight=False,
        )
    for path in report.get("plots", []):
        _console.print(f"wrote {path}", highlight=False)


def _print_insight(insight: CustomerInsight) -> None:
    _console.print(
        f"[bold]{insight.customer_id}[/bold] at {insight.at}: RFM {insight.rfm}, segment {insight.segment or '-'}",
        highlight=False,
    )
    features = Table("feature", "value", title="features")
    for name, value in insight.features.items():
        features.add_row(name, f"{value:,.3f}".rstrip("0").rstrip("."))
    _console.print(features)
    for label, prediction in (("churn_30d", insight.churn), ("repurchase_3d", insight.repurchase)):
        _print_prediction(label, prediction)


def _print_prediction(label: str, prediction: Prediction | None) -> None:
    if prediction is None:
        _console.print(f"{label}: no score (no model: run `kefu insights train`, or no order yet)", highlight=False)
        return
    grid = Table("feature", "value", "effect (log-odds)", title=f"{label} = {prediction.score:.3f}")
    for item in prediction.contributions:
        grid.add_row(item.feature, f"{item.value:,.3f}", f"{item.effect:+.3f}")
    _console.print(grid)
    _console.print(f"model {prediction.model_version}", highlight=False)
