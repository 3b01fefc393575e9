"""``kefu report``: the README's "Results" section and its plots, generated from ``evals/results/*.json``.

Every figure in the section comes from a results file written by a command in this repository,
and the section names the command, the machine, the model and the date of each. A file that is
missing gets a line saying which command produces it, never an invented number.

    kefu report                     # rewrite README.md's Results section and docs/results/*.png
    kefu report --check             # exit 1 if README.md is not what the results files give

The section sits between ``<!-- results:start -->`` and ``<!-- results:end -->`` in README.md.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["main", "render"]

START: Final = "<!-- results:start -->"
END: Final = "<!-- results:end -->"

Results = dict[str, dict[str, Any]]
"""Results files by stem (``scenarios``, ``bench``, ``tau2``, ``reliability``, ``redteam``)."""

_FILES: Final = ("scenarios", "scenarios_baseline", "bench", "tau2", "reliability", "redteam")

_COMMANDS: Final[dict[str, str]] = {
    "scenarios": "kefu eval scenarios --k 4 --model qwen2.5-coder-0.5b",
    "bench": "kefu bench",
    "tau2": "kefu eval tau2 --db …/db.json --tasks …/tasks_dev.jsonl --policy …/policy.md --model qwen2.5-coder-0.5b",
    "reliability": "make soak",
    "redteam": "kefu eval redteam",
}


def load(results_dir: Path) -> Results:
    """Every results file that exists, by stem."""
    found: Results = {}
    for stem in _FILES:
        path = results_dir / f"{stem}.json"
        if path.is_file():
            found[stem] = json.loads(path.read_text())
    return found


# -- formatting ------------------------------------------------------------------------------------


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.0f}%"


def _ms(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{value:.0f} ms"


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def _machine(data: dict[str, Any]) -> str:
    machine = data.get("machine") or {}
    cores = machine.get("cores")
    memory = machine.get("memory_gib")
    parts = [f"{cores} CPU cores" if cores else None, f"{memory:.0f} GiB" if memory else None]
    parts.append(f"GPU: {machine['gpu']}" if machine.get("gpu") else "no GPU")
    return ", ".join(p for p in parts if p)


def _provenance(data: dict[str, Any], default_command: str) -> str:
    model = data.get("model") or "–"
    llm = data.get("llm")
    if llm == "fake":
        model = "deterministic fake LLM endpoint"
    return (
        f"*`{data.get('command') or default_command}` · model: {model} · {_machine(data)} · "
        f"{data.get('date') or (data.get('machine') or {}).get('date', '–')}*"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _pass_row(label: str, n: Any, pass_hat_k: dict[str, Any], k: int) -> list[str]:
    return [label, str(n), *(_pct(pass_hat_k.get(str(i))) for i in range(1, k + 1))]


# -- sections --------------------------------------------------------------------------------------


def _scenarios(results: Results, plots: list[str]) -> list[str]:
    data = results.get("scenarios")
    out = ["### Scenario suite: pass^k", ""]
    if data is None:
        return [*out, f"Not run yet: `{_COMMANDS['scenarios']}`.", ""]
    k = int(data.get("k", 1))
    out += [
        f"{data.get('scenarios_total', len(data.get('results', [])))} multi-turn conversations "
        f"(`evals/scenarios/*.yaml`, zh and en), each run {k} times; pass^k is the chance that all k "
        "runs of a scenario pass (τ-bench's estimator), so pass^k close to pass^1 means consistent.",
        "",
        _provenance(data, _COMMANDS["scenarios"]),
        "",
    ]
    header = ["category", "scenarios", *(f"pass^{i}" for i in range(1, k + 1))]
    rows = [_pass_row("**all**", data.get("scenarios_total", "–"), data.get("pass_hat_k", {}), k)]
    for category, entry in sorted((data.get("by_category") or {}).items()):
        rows.append(_pass_row(category, entry.get("n", "–"), entry.get("pass_hat_k", {}), k))
    for lang, entry in sorted((data.get("by_lang") or {}).items()):
        rows.append(_pass_row(f"language: {lang}", entry.get("n", "–"), entry.get("pass_hat_k", {}), k))
    out += _table(header, rows)
    turns = data.get("turns") or {}
    if turns:
        latency = turns.get("latency_ms") or {}
        out += [
            "",
            f"{turns.get('count', '–')} turns: median {_ms(latency.get('p50'))}, p90 {_ms(latency.get('p90'))}; "
            f"{_num(turns.get('llm_calls_per_turn'), 2)} LLM calls per turn; "
            f"{_pct(turns.get('rules_share'))} of replies from rules.",
        ]
    if "pass_k" in plots:
        out += ["", "![pass^k by category](docs/results/pass_k.png)"]
    return [*out, ""]


def _side_by_side(results: Results, plots: list[str]) -> list[str]:
    bench = results.get("bench") or {}
    data = bench.get("side_by_side")
    out = ["### Side by side with a LangGraph ReAct agent", ""]
    if not data:
        return [*out, f"Not run yet: `{_COMMANDS['bench']}`.", ""]
    targets = data.get("targets") or {}
    kefu, react = targets.get("kefu") or {}, targets.get("react-baseline") or {}
    out += [
        "The baseline is LangGraph's prebuilt ReAct agent with Kefu's tools, prompt, model client and store; "
        "both run the same scenarios against the same endpoint, and a recording proxy in front of the "
        "endpoint counts calls and tokens for both alike.",
        "",
        _provenance({**bench, **data}, _COMMANDS["bench"]),
        "",
    ]
    metrics: list[tuple[str, str, Callable[[Any], str]]] = [
        ("LLM calls per turn", "llm_calls_per_turn", lambda v: _num(v, 2)),
        ("prompt tokens per turn", "prompt_tokens_per_turn", lambda v: _num(v, 0)),
        ("completion tokens per turn", "completion_tokens_per_turn", lambda v: _num(v, 0)),
        ("median latency per turn", "latency_p50_ms", _ms),
        ("p90 latency per turn", "latency_p90_ms", _ms),
        ("scenario pass rate (pass^1)", "pass_rate", _pct),
    ]
    ratios = data.get("ratios") or {}
    rows = []
    for label, key, fmt in metrics:
        ratio = ratios.get(key)
        rows.append([label, fmt(kefu.get(key)), fmt(react.get(key)), "–" if ratio is None else f"{ratio:.2f}×"])
    out += _table(["per turn", "Kefu", "ReAct baseline", "baseline ÷ Kefu"], rows)
    endpoint = data.get("endpoint")
    if endpoint:
        out += ["", f"Endpoint: {endpoint}; {data.get('scenarios', '–')} scenarios × {data.get('k', 1)}."]
    if data.get("note"):
        out += ["", str(data["note"])]
    return [*out, ""]


def _overhead(results: Results, plots: list[str]) -> list[str]:
    bench = results.get("bench") or {}
    data = bench.get("overhead")
    out = ["### Framework overhead (instant fake LLM endpoint)", ""]
    if not data:
        return [*out, f"Not run yet: `{_COMMANDS['bench']} --part overhead`.", ""]
    out += [
        "What Kefu itself costs per turn when the model answers instantly: HTTP, graph, classifier, "
        "redaction, guards and database, with 1 to 200 conversations at once.",
        "",
        _provenance({**bench, "llm": "fake"}, _COMMANDS["bench"] + " --part overhead"),
        "",
    ]
    rows = []
    for level in data.get("levels") or []:
        latency = level.get("latency_ms") or {}
        rows.append(
            [
                f"Kefu, {level.get('path')} path",
                str(level.get("concurrency")),
                str(level.get("turns")),
                _num(level.get("turns_per_s")),
                _ms(latency.get("p50")),
                _ms(latency.get("p99")),
            ]
        )
    for level in data.get("baseline") or []:
        latency = level.get("latency_ms") or {}
        rows.append(
            [
                f"ReAct baseline, {level.get('path', 'llm')} (in-process)",
                str(level.get("concurrency")),
                str(level.get("turns")),
                _num(level.get("turns_per_s")),
                _ms(latency.get("p50")),
                _ms(latency.get("p99")),
            ]
        )
    out += _table(["what", "concurrent", "turns", "turns/s", "p50", "p99"], rows)
    if "overhead" in plots:
        out += ["", "![turns per second by concurrency](docs/results/overhead.png)"]
    return [*out, ""]


def _real(results: Results, plots: list[str]) -> list[str]:
    bench = results.get("bench") or {}
    data = bench.get("real")
    out = ["### With the embedded model", ""]
    if not data:
        return [*out, f"Not run yet: `{_COMMANDS['bench']} --part real`.", ""]
    latency, ttft, llm_ttft = data.get("latency_ms") or {}, data.get("ttft_ms") or {}, data.get("llm_ttft_ms") or {}
    out += [
        _provenance({**bench, **data}, _COMMANDS["bench"] + " --part real"),
        "",
        *_table(
            ["over the scenario mix", "p50", "p90", "p99"],
            [
                ["turn latency", _ms(latency.get("p50")), _ms(latency.get("p90")), _ms(latency.get("p99"))],
                ["first reply token at the customer", _ms(ttft.get("p50")), _ms(ttft.get("p90")), _ms(ttft.get("p99"))],
                [
                    "first token from the LLM",
                    _ms(llm_ttft.get("p50")),
                    _ms(llm_ttft.get("p90")),
                    _ms(llm_ttft.get("p99")),
                ],
            ],
        ),
        "",
        f"{data.get('turns', '–')} turns. Replies stream to the customer only after redaction and the "
        "guards have checked the whole reply, so the customer's first token arrives with the reply.",
    ]
    if "latency" in plots:
        out += ["", "![turn latency distribution](docs/results/latency.png)"]
    return [*out, ""]


def _tau2(results: Results, plots: list[str]) -> list[str]:
    data = results.get("tau2")
    out = ["### τ²-bench retail (dev tasks)", ""]
    if data is None:
        return [*out, f"Not run yet: `{_COMMANDS['tau2']}`.", ""]
    k = int(data.get("k", 1))
    out += [
        "τ²'s retail database loaded into Kefu's store, τ²'s tools, an LLM user simulator, scored as τ² "
        "scores (database hash after replaying the reference actions, required phrases). Built for GPU "
        "endpoints; the small CPU model's scores are low.",
        "",
        _provenance(data, _COMMANDS["tau2"]),
        "",
        *_table(
            ["tasks", *(f"pass^{i}" for i in range(1, k + 1)), "database matches", "required phrases said"],
            [
                [
                    str(data.get("tasks", "–")),
                    *(_pct((data.get("pass_hat_k") or {}).get(str(i))) for i in range(1, k + 1)),
                    _pct(data.get("db_match_rate")),
                    _pct(data.get("communicate_rate")),
                ]
            ],
        ),
    ]
    return [*out, ""]


def _reliability(results: Results, plots: list[str]) -> list[str]:
    data = results.get("reliability")
    redteam = results.get("redteam")
    out = ["### Faults, hostile input and storage", ""]
    if data is None and redteam is None:
        return [*out, f"Not run yet: `{_COMMANDS['reliability']}` and `{_COMMANDS['redteam']}`.", ""]
    rows: list[list[str]] = []
    if data is not None:
        for name, entry in data.items():
            if not isinstance(entry, dict) or "passed" not in entry:
                continue
            rows.append([name, "passed" if entry.get("passed") else "**failed**", _summary(entry)])
    if redteam is not None:
        counts = {
            key: redteam.get(key)
            for key in ("cross_customer_disclosures", "raw_pii_to_llm", "system_prompt_leaks", "placeholder_leaks")
        }
        failed = any(v for v in counts.values())
        detail = f"{redteam.get('prompts', '–')} prompts; " + ", ".join(
            f"{key.replace('_', ' ')}: {value}" for key, value in counts.items()
        )
        rows.append(["red team", "**failed**" if failed else "passed", detail])
    out += _table(["test", "outcome", "measured"], rows)
    sources = [d for d in (data, redteam) if d is not None]
    out += ["", *(_provenance(d, _COMMANDS["reliability"] if d is data else _COMMANDS["redteam"]) for d in sources)]
    return [*out, ""]


def _summary(entry: dict[str, Any]) -> str:
    """The scalar measurements of a reliability scenario, as ``key: value`` pairs."""
    parts = []
    for key, value in entry.items():
        if key in ("passed", "failures", "notes") or isinstance(value, (dict, list)):
            continue
        if isinstance(value, float):
            value = f"{value:,.2f}"
        elif isinstance(value, int) and not isinstance(value, bool):
            value = f"{value:,}"
        parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts) or "–"


def render(results: Results, plots: Sequence[str] = ()) -> str:
    """The Markdown of the Results section (markers included)."""
    plot_list = list(plots)
    lines = [
        START,
        "## Results",
        "",
        "Generated by `kefu report` from `evals/results/*.json`; each block names the command that "
        "produced it. Rerun those commands and `kefu report` to reproduce or refresh it.",
        "",
    ]
    for section in (_scenarios, _side_by_side, _overhead, _real, _tau2, _reliability):
        lines += section(results, plot_list)
    lines.append(END)
    return "\n".join(lines) + "\n"


# -- plots -----------------------------------------------------------------------------------------


def plot(results: Results, out_dir: Path) -> list[str]:
    """Write the PNG plots the results allow; returns their names (``pass_k``, ``overhead``, ``latency``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    made: list[str] = []
    scenarios = results.get("scenarios")
    if scenarios and scenarios.get("pass_hat_k"):
        k = int(scenarios.get("k", 1))
        fig, ax = plt.subplots(figsize=(7, 4.2))
        xs = list(range(1, k + 1))
        series = {"all": scenarios["pass_hat_k"]} | {
            name: entry.get("pass_hat_k", {}) for name, entry in sorted((scenarios.get("by_category") or {}).items())
        }
        for name, values in series.items():
            ys = [100 * float(values.get(str(x), 0.0)) for x in xs]
            ax.plot(xs, ys, marker="o", linewidth=3 if name == "all" else 1, label=name)
        ax.set_xticks(xs)
        ax.set_xlabel("k (runs that must all pass)")
        ax.set_ylabel("pass^k (%)")
        ax.set_ylim(0, 100)
        ax.set_title("Scenario suite: pass^k by category")
        ax.legend(fontsize=7, ncol=2, loc="lower left")
        fig.tight_layout()
        fig.savefig(out_dir / "pass_k.png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        made.append("pass_k")
    bench = results.get("bench") or {}
    levels = (bench.get("overhead") or {}).get("levels") or []
    if levels:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for path in sorted({str(level.get("path")) for level in levels}):
            points = sorted(
                (int(level["concurrency"]), float(level["turns_per_s"]))
                for level in levels
                if str(level.get("path")) == path and level.get("turns_per_s") is not None
            )
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=f"Kefu, {path} path")
        baseline = (bench.get("overhead") or {}).get("baseline") or []
        points = sorted(
            (int(level["concurrency"]), float(level["turns_per_s"]))
            for level in baseline
            if level.get("turns_per_s") is not None
        )
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="s", linestyle="--", label="ReAct baseline")
        ax.set_xscale("log")
        ax.set_xlabel("concurrent conversations")
        ax.set_ylabel("turns per second")
        ax.set_title("Throughput with an instant fake LLM")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "overhead.png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        made.append("overhead")
    real = bench.get("real") or {}
    samples = {"Kefu": real.get("latencies") or []}
    side = ((bench.get("side_by_side") or {}).get("targets") or {}).get("react-baseline") or {}
    if side.get("latencies"):
        samples["ReAct baseline"] = side["latencies"]
    if samples["Kefu"]:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for label, values in samples.items():
            if values:
                ax.hist([v / 1000 for v in values], bins=30, alpha=0.6, label=label)
        ax.set_xlabel("turn latency (s)")
        ax.set_ylabel("turns")
        ax.set_title(f"Turn latency with {bench.get('model') or 'the embedded model'}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=110, metadata={"Software": None})
        plt.close(fig)
        made.append("latency")
    return made


def splice(readme: str, section: str) -> str:
    """``readme`` with the Results section replaced, or inserted before "## Development" if it has none."""
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        tail = rest.split(END, 1)[1]
        return head + section.rstrip("\n") + tail
    anchor = "\n## Development"
    if anchor in readme:
        head, tail = readme.split(anchor, 1)
        return head.rstrip("\n") + "\n\n" + section + anchor + tail
    return readme.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> int:
    """Generate (or ``--check``) the README's Results section."""
    parser = argparse.ArgumentParser(prog="kefu report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("evals/results"), help="Results files directory.")
    parser.add_argument("--readme", type=Path, default=Path("README.md"), help="The README to update.")
    parser.add_argument("--plots", type=Path, default=Path("docs/results"), help="Where the PNG plots go.")
    parser.add_argument("--check", action="store_true", help="Only check that the README is up to date.")
    args = parser.parse_args(argv)
    results = load(args.results)
    if args.check:
        names = [p.stem for p in args.plots.glob("*.png")] if args.plots.is_dir() else []
        expected = splice(args.readme.read_text(), render(results, names))
        if expected != args.readme.read_text():
            print(f"{args.readme} is out of date: run kefu report")
            return 1
        print(f"{args.readme} is up to date")
        return 0
    made = plot(results, args.plots)
    args.readme.write_text(splice(args.readme.read_text(), render(results, made)))
    print(f"wrote the Results section of {args.readme} ({len(results)} results files) and {len(made)} plots")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
