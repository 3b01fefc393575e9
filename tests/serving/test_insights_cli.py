"""``kefu insights`` on a seeded data directory: segments, train, eval (plots, JSON, control), customer."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, make_database_url: Callable[..., str]) -> Iterator[Path]:
    """A data directory (``KEFU_DATA_DIR``) and a copy of the seeded demo store (``KEFU_DATABASE_URL``)."""
    root = tmp_path_factory.mktemp("insights-cli")
    (root / "var").mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("KEFU_DATA_DIR", str(root / "var"))
        patch.setenv("KEFU_DATABASE_URL", make_database_url(seeded=True))
        patch.setenv("KEFU_CACHE_DIR", str(root / "cache"))
        patch.delenv("KEFU_INSIGHTS_DIR", raising=False)
        yield root / "var"


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="module")
def trained(runner: CliRunner, data_dir: Path) -> str:
    """``kefu insights train`` once for the module; its output."""
    result = runner.invoke(app, ["insights", "train", "--seed", "0", "--snapshot-days", "7"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_segments_as_a_table_and_as_json(runner: CliRunner, data_dir: Path) -> None:
    table = runner.invoke(app, ["insights", "segments"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "220 customers" in table.output
    assert any(label in table.output for label in ("高价值活跃", "流失风险", "沉睡客户"))
    result = runner.invoke(app, ["insights", "segments", "--json", "--k", "4"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    names = [segment["name"] for segment in body["segments"]]
    assert len(names) == len(set(names)) == 4
    assert sum(segment["size"] for segment in body["segments"]) == body["customers"] == 220
    bad = runner.invoke(app, ["insights", "segments", "--k", "1"])
    assert bad.exit_code == 1 and "at least 2 segments" in bad.output


def test_eval_before_training_says_what_to_do(runner: CliRunner, data_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["insights", "eval"], env={"KEFU_INSIGHTS_DIR": str(tmp_path / "none")})
    assert result.exit_code == 1
    assert "kefu insights train" in result.output


def test_train_prints_metrics_and_writes_both_models(trained: str, data_dir: Path) -> None:
    for target in ("churn_30d", "repurchase_3d"):
        assert target in trained
        meta = json.loads((data_dir / "insights" / f"{target}.json").read_text())
        assert (data_dir / "insights" / f"{target}.pkl").is_file()
        assert meta["seed"] == 0 and meta["snapshot_days"] == 7
        assert meta["version"] in trained
    assert re.search(r"model\s*│\s*0\.\d{3}", trained)  # the AUC column
    assert "baseline" in trained and "positive rate" in trained


def test_eval_writes_plots_json_and_the_shuffled_control(
    runner: CliRunner, trained: str, data_dir: Path, tmp_path: Path
) -> None:
    plots, report = tmp_path / "plots", tmp_path / "eval.json"
    args = ["insights", "eval", "--plots", str(plots), "--json", str(report), "--shuffled-labels", "--runs", "2"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "reliability" in result.output and "shuffled labels: AUC" in result.output
    assert sorted(path.name for path in plots.glob("*.png")) == sorted(
        f"{target}_{kind}.png"
        for target in ("churn_30d", "repurchase_3d")
        for kind in ("roc", "reliability", "contributions")
    )
    body = json.loads(report.read_text())
    for target in ("churn_30d", "repurchase_3d"):
        saved = json.loads((data_dir / "insights" / f"{target}.json").read_text())
        assert body[target]["metrics"]["model"]["auc"] == pytest.approx(saved["metrics"]["model"]["auc"])
        assert len(body[target]["shuffled_labels"]["auc"]) == 2
        assert len(body[target]["metrics"]["model"]["reliability"]) == 10


def test_one_customers_insight(runner: CliRunner, trained: str, data_dir: Path) -> None:
    result = runner.invoke(app, ["insights", "customer", "C0001"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert re.search(r"RFM R[1-5]F[1-5]M[1-5], segment \w+", result.output)
    assert "churn_30d = 0." in result.output and "repurchase_3d = 0." in result.output
    body = json.loads(runner.invoke(app, ["insights", "customer", "C0002", "--json"]).output)
    assert body["customer_id"] == "C0002" and body["churn"]["contributions"]
    missing = runner.invoke(app, ["insights", "customer", "C9999"])
    assert missing.exit_code == 1 and "unknown customer 'C9999'" in missing.output
