"""What every eval and benchmark that drives the real server shares: processes, ports, percentiles, the machine.

Evals sit beside ``serving`` in the layering, so they never import it: they run ``kefu`` as an
operator would, as separate processes (``python -m serving.cli ...`` so the venv's code runs), and
talk to it over HTTP.

- ``KefuServer`` prepares a fresh data directory (``kefu seed``, ``kefu vault init``, ``kefu keys
  create``, ``kefu agents add``) and runs ``kefu serve`` on it; it can be stopped, killed with
  SIGKILL and started again on the same data, which is what the reliability suite does.
- ``LlmServerProcess`` runs ``kefu models serve``: the embedded llama-server on its own, so a
  recording proxy (``evals.llm_proxy``) can sit between it and the agent.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import platform
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

__all__ = [
    "BENCH_AGENT",
    "KefuServer",
    "LlmServerProcess",
    "free_port",
    "machine",
    "percentiles",
    "run_kefu",
    "server_env",
]

BENCH_AGENT: Final = "bench-lead"
"""The console account every prepared data directory gets (role ``lead``)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: Sequence[float], quantiles: Sequence[float] = (0.5, 0.9, 0.99)) -> dict[str, float | None]:
    """Nearest-rank percentiles keyed ``p50``, ``p90``, ``p99`` (None without samples), rounded to 0.1."""
    ordered = sorted(values)
    out: dict[str, float | None] = {}
    for q in quantiles:
        key = f"p{round(q * 100):d}"
        if not ordered:
            out[key] = None
            continue
        out[key] = round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 1)
    return out


def machine() -> dict[str, Any]:
    """The machine a number was measured on: CPU model and cores, memory, OS, Python, date."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory_gib: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory_gib,
        "gpu": None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }


def run_kefu(env: Mapping[str, str], *args: str, timeout_s: float = 900) -> str:
    """Run a ``kefu`` command and return what it printed; a failure ends the eval with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "serving.cli", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"kefu {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def server_env(
    data_dir: Path, port: int, *, llm_base_url: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment of a server on ``data_dir``, rate limits out of the way, text logs.

    With ``llm_base_url`` the agent uses that OpenAI-compatible endpoint; without it ``kefu serve``
    starts the embedded llama-server (``extra`` may set any other ``KEFU_*`` variable).
    """
    env = {
        **os.environ,
        "KEFU_DATA_DIR": str(data_dir),
        "KEFU_HOST": "127.0.0.1",
        "KEFU_PORT": str(port),
        "KEFU_LOG_FORMAT": "text",
        "KEFU_RATE_PER_KEY_PER_MIN": "100000000",
        "KEFU_RATE_PER_CONVERSATION_PER_MIN": "100000000",
    }
    if llm_base_url is not None:
        env |= {"KEFU_LLM_BACKEND": "openai", "KEFU_LLM_BASE_URL": llm_base_url}
    return env | dict(extra or {})


def _terminate(process: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM a process group started with ``start_new_session``, SIGKILL it after ``grace_s``."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_s)
    except subprocess.TimeoutExpired:
        _kill(process)


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL the whole process group at once: no shutdown code runs."""
    if process is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


class KefuServer:
    """``kefu serve`` on a data directory it prepares once; start, stop, kill -9 and start again.

    Example:
        with KefuServer(tmp, llm_base_url=fake.base_url) as server:
            httpx.post(f"{server.base_url}/v1/chat", headers=server.headers, json=...)
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        llm_base_url: str | None = None,
        model: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 900,
    ) -> None:
        """Describe the server; ``start`` (or ``with``) prepares the data directory and launches it.

        ``llm_base_url`` points the agent at an OpenAI-compatible endpoint; otherwise ``model`` (a
        name from ``kefu models list``) makes ``kefu serve`` start its own llama-server.
        """
        self.data_dir = data_dir
        self.port = free_port()
        self.model = model
        self.env = server_env(data_dir, self.port, llm_base_url=llm_base_url, extra=extra_env)
        self.agent_password = secrets.token_urlsafe(12)
        self.env["KEFU_AGENT_PASSWORD"] = self.agent_password
        self.ready_timeout_s = ready_timeout_s
        self.api_key = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        """The API key as a bearer credential."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def database_url(self) -> str:
        """The server's SQLite database, for reading database effects."""
        return f"sqlite:///{self.data_dir / 'kefu.db'}"

    def prepare(self) -> str:
        """Seed the demo store, create the vault key, an API key and the console account; returns the API key."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_kefu(self.env, "seed")
        run_kefu(self.env, "vault", "init")
        printed = run_kefu(self.env, "keys", "create", "--name", "eval", "--channel", "app")
        key = re.search(r"^kf_\S+$", printed, re.MULTILINE)
        if key is None:
            raise SystemExit(f"`kefu keys create` printed no key:\n{printed}")
        run_kefu(self.env, "agents", "add", BENCH_AGENT, "--name", "Bench Lead", "--role", "lead")
        self.api_key = key.group(0)
        return self.api_key

    def start(self) -> Self:
        """Prepare the data directory on the first start, launch ``kefu serve`` and wait for ``/readyz``."""
        if not self.api_key:
            self.prepare()
        command = [sys.executable, "-m", "serving.cli", "serve", "--port", str(self.port)]
        if self.model:
            command += ["--model", self.model]
        with (self.data_dir / "serve.log").open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log, start_new_session=True)
        self.starts += 1
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"kefu serve exited with {self.process.returncode}; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get("/readyz").status_code == 200:
                        return
                time.sleep(0.3)
        raise SystemExit(f"the server was not ready after {self.ready_timeout_s:.0f} s; see {self.log_path}")

    @property
    def log_path(self) -> Path:
        """Where the server's output goes (appended across restarts)."""
        return self.data_dir / "serve.log"

    def stop(self, grace_s: float = 30) -> None:
        """SIGTERM the server (and the llama-server it started), SIGKILL after ``grace_s``."""
        process, self.process = self.process, None
        _terminate(process, grace_s)

    def kill(self) -> None:
        """SIGKILL the server's whole process group at once: no shutdown code runs."""
        process, self.process = self.process, None
        _kill(process)

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Stop the server."""
        self.stop()


class LlmServerProcess:
    """The embedded llama-server on its own (``kefu models serve``), for evals that share or proxy it."""

    def __init__(
        self, model: str, *, parallel: int = 4, log_path: Path | None = None, env: Mapping[str, str] | None = None
    ):
        """Describe it; ``start`` (or ``with``) launches it and waits for ``/health``."""
        self.model = model
        self.port = free_port()
        self.parallel = parallel
        self.log_path = log_path
        self.env = dict(env or os.environ)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout_s: float = 600) -> Self:
        """Launch and wait until it answers ``/health``."""
        command = [sys.executable, "-m", "serving.cli", "models", "serve", "--model", self.model]
        command += ["--port", str(self.port), "--parallel", str(self.parallel)]
        output: Any = self.log_path.open("ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(command, env=self.env, stdout=output, stderr=output, start_new_session=True)
        finally:
            if self.log_path:
                output.close()
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"kefu models serve exited with {self.process.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                        return self
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the LLM server was not healthy after {timeout_s:.0f} s")

    def kill(self) -> None:
        """SIGKILL it (and its llama-server): the LLM backend dies mid-conversation."""
        process, self.process = self.process, None
        _kill(process)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        process, self.process = self.process, None
        _terminate(process, 10)

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Stop the server."""
        self.stop()
