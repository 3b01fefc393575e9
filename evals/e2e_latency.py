"""Per-turn latency of the 3-turn order conversations, through the real server and a real model.

Starts ``kefu serve`` as a separate process on a free port with a fresh copy of the demo data,
waits until the LLM's prompt cache is warm, then drives the same Chinese and English
conversations as the e2e test over HTTP, ``--repeat`` times, and prints a table and JSON.

    python -m evals.e2e_latency --model qwen2.5-coder-1.5b --repeat 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from core.db import make_engine
from core.seed import seed
from core.store import SqlStore
from core.types import CustomerId, OrderStatus

__all__ = ["main"]

CONVERSATIONS = {
    "zh": ("C0001", ["你好", "我的订单 {order} 到哪了？", "那它什么时候能送到？"]),
    "en": ("C0002", ["Hi there", "Where is my order {order}?", "When will it arrive?"]),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(client: httpx.Client, process: subprocess.Popen[bytes], timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"kefu serve exited with {process.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            ready: dict[str, Any] = client.get("/readyz").json()
            if ready.get("prompt_cache") in ("warm", "n/a"):
                return ready
        time.sleep(1)
    raise SystemExit(f"server not ready after {timeout_s:.0f}s")


def _shipped_order(store: SqlStore, customer: str) -> str:
    for order in store.list_orders(CustomerId(customer), limit=20):
        if order.status is OrderStatus.SHIPPED:
            return order.id
    raise SystemExit(f"no shipped order for {customer}")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b", help="model name from `kefu models list`")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each conversation")
    parser.add_argument("--out", type=Path, default=Path("evals/results/e2e_latency.json"))
    args = parser.parse_args(argv)

    port = _free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    engine = make_engine(f"sqlite:///{data_dir / 'kefu.db'}")
    seed(engine)
    store = SqlStore(engine)
    env = {**os.environ, "KEFU_DATA_DIR": str(data_dir), "KEFU_PORT": str(port), "KEFU_LLM_MODEL": args.model}
    created = subprocess.run(
        [sys.executable, "-m", "serving.cli", "keys", "create", "--name", "e2e-latency"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    key = created.stdout.strip().splitlines()[-1]
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "serving.cli", "serve"], env=env, stdout=log, stderr=log)
    rows: list[dict[str, Any]] = []
    try:
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300, headers=headers) as client:
            ready = _wait_ready(client, process, timeout_s=600)
            for lang, (customer, turns) in CONVERSATIONS.items():
                order_id = _shipped_order(store, customer)
                for run in range(args.repeat):
                    for index, text in enumerate(turns, start=1):
                        started = time.perf_counter()
                        turn = client.post(
                            "/v1/chat",
                            json={
                                "conversation_id": f"bench-{lang}-{run}",
                                "customer_id": customer,
                                "text": text.format(order=order_id),
                            },
                        ).json()
                        rows.append(
                            {
                                "lang": lang,
                                "run": run,
                                "turn": index,
                                "wall_ms": round((time.perf_counter() - started) * 1000, 1),
                                "server_ms": turn["latency_ms"],
                                "llm_calls": turn["llm_calls"],
                                "route": turn["route"],
                                "intent": turn["intent"],
                                "status_in_reply": order_id in turn["reply"],
                            }
                        )
    finally:
        process.terminate()
        process.wait(30)
        log.close()

    print(f"model {args.model} · backend {ready['llm']} · {os.cpu_count()} CPU cores · {args.repeat} runs each")
    print(f"{'lang':<5}{'turn':>5}{'median ms':>12}{'p90 ms':>10}{'LLM calls':>11}  routes")
    for lang in CONVERSATIONS:
        for index in (1, 2, 3):
            cell = [r for r in rows if r["lang"] == lang and r["turn"] == index]
            times = sorted(r["wall_ms"] for r in cell)
            p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
            calls = statistics.mean(r["llm_calls"] for r in cell)
            routes = ",".join(sorted({r["route"] for r in cell}))
            print(f"{lang:<5}{index:>5}{statistics.median(times):>12.0f}{p90:>10.0f}{calls:>11.1f}  {routes}")
    all_times = [r["wall_ms"] for r in rows]
    print(f"median turn latency, all turns: {statistics.median(all_times):.0f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
