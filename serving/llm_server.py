"""Launch llama.cpp's ``llama-server`` as a child process and stop it with the app.

The child dies with its parent even on SIGKILL (Linux ``PR_SET_PDEATHSIG``), so Ctrl-C or a
crash never leaves an orphaned server holding 2 GB of RAM.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import IO

import httpx

from core.errors import BackendError, ConfigError
from core.settings import Settings

__all__ = ["LLAMA_CPP_PYTHON_VERSION", "LlamaServer", "default_binary", "free_port"]

log = logging.getLogger(__name__)

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
"""The llama-cpp-python sdist whose vendored llama.cpp sources build the server."""


def default_binary(cache_dir: Path) -> Path:
    """Where ``scripts/build-llama-server.sh`` caches the binary."""
    return cache_dir / "bin" / f"llama-server-{LLAMA_CPP_PYTHON_VERSION}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LlamaServer:
    """A running ``llama-server`` with one model, on 127.0.0.1."""

    def __init__(
        self,
        binary: Path,
        model: Path,
        *,
        alias: str,
        port: int = 0,
        ctx: int = 4096,
        threads: int | None = None,
        parallel: int = 4,
        log_path: Path | None = None,
    ) -> None:
        """Describe the server; ``start`` launches it. Port 0 picks a free port."""
        if not binary.is_file():
            raise ConfigError(f"llama-server binary not found at {binary}; run: bash scripts/build-llama-server.sh")
        self.binary, self.model, self.alias = binary, model, alias
        self.port = port or free_port()
        self.ctx, self.threads, self.parallel = ctx, threads, parallel
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, model: Path) -> LlamaServer:
        """The server ``settings`` describe, for the resolved ``model`` file."""
        return cls(
            settings.llama_server_bin or default_binary(settings.cache_dir),
            model,
            alias=settings.llm_model,
            port=settings.llama_port,
            ctx=settings.llama_ctx,
            threads=settings.llama_threads,
            log_path=settings.data_dir / "llama-server.log",
        )

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        """The command line.

        ``--jinja`` renders tool schemas through the model's chat template. Four slots keep the
        four prompt prefixes (intent and reply, Chinese and English) cached, so a turn only
        evaluates its new tokens.
        """
        command = [
            str(self.binary),
            "--model", str(self.model),
            "--alias", self.alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--ctx-size", str(self.ctx * self.parallel),
            "--parallel", str(self.parallel),
            "--jinja",
            "--no-webui",
        ]  # fmt: skip
        if self.threads:
            command += ["--threads", str(self.threads)]
        return command

    def start(self, timeout_s: float = 120.0) -> LlamaServer:
        """Launch and wait until ``/health`` answers OK.

        Raises:
            BackendError: the process exited or did not become healthy in time (log tail included).
        """
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with self.log_path.open("wb") as log_file:  # the child keeps its own copy of the descriptor
                self._process = self._spawn(log_file)
        else:
            self._process = self._spawn(subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise BackendError(f"llama-server exited with code {self._process.returncode}: {self._log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.port}/health").status_code == 200:
                        return self
                time.sleep(0.25)
        self.stop()
        raise BackendError(f"llama-server not healthy after {timeout_s:.0f}s: {self._log_tail()}")

    def _spawn(self, output: IO[bytes] | int) -> subprocess.Popen[bytes]:
        log.info("starting %s", " ".join(self.command()))
        return subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,  # no threads exist in the child yet, so this is safe
        )

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate the server, killing it if it does not exit within ``grace_s``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def _log_tail(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return self.log_path.read_text(errors="replace")[-1500:]

    def __enter__(self) -> LlamaServer:
        """Start the server."""
        return self.start()

    def __exit__(self, *exc: object | type[BaseException] | TracebackType | None) -> None:
        """Stop the server."""
        self.stop()
