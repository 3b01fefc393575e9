"""Real servers on loopback for tests and the cluster soak: PostgreSQL, Redis and nginx from Debian, Chroma.

Each class starts one server process on a free ``127.0.0.1`` port in a private temporary folder and
stops it (and deletes the folder) on ``stop``, or at the end of a ``with`` block. They run the
Debian packages' binaries (``make services`` installs them; ``missing()`` says which are absent),
and ``chroma run`` from the virtualenv (chromadb's own server).

PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` user the Debian
package creates, in a folder that user owns (pytest's temporary folders are private to root).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from evals.harness import _kill, _terminate, free_port

__all__ = ["ChromaServer", "NginxServer", "PostgresServer", "RedisServer", "free_port", "missing", "wait_for_port"]

_PG_ROOTS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def wait_for_port(port: int, timeout_s: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port``.

    Raises:
        RuntimeError: nothing listens in time, or ``process`` exited first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _pg_bin(name: str) -> str | None:
    for root in _PG_ROOTS:
        if (root / name).exists():
            return str(root / name)
    return shutil.which(name)


def missing() -> list[str]:
    """The Debian packages whose servers are not installed here (``make services`` installs them)."""
    absent = []
    if _pg_bin("initdb") is None or _pg_bin("postgres") is None:
        absent.append("postgresql")
    if shutil.which("redis-server") is None:
        absent.append("redis-server")
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        absent.append("nginx-light")
    return absent


class _Server:
    """A server process in a private folder."""

    name = "server"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"kefu-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.log = self.dir / f"{self.name}.log"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        """Start the server and wait until it accepts connections."""
        raise NotImplementedError

    def _spawn(self, argv: list[str], *, user: str | None = None) -> None:
        if user is not None and os.geteuid() == 0:
            argv = ["runuser", "-u", user, "--", *argv]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_port(self.port, 60, self.process)
        except RuntimeError as exc:
            tail = self.log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {exc}\n{tail}") from exc

    def stop(self) -> None:
        """Stop the server (politely, then by force) and delete its folder."""
        process, self.process = self.process, None
        _terminate(process, 15)
        shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server at once (its folder stays until ``stop``)."""
        process, self.process = self.process, None
        _kill(process)


class PostgresServer(_Server):
    """A throwaway PostgreSQL cluster (``initdb`` + ``postgres``) with trust authentication for ``kefu``.

    ``durable=False`` turns off fsync and synchronous commit: right for tests, wrong for measuring.
    """

    name = "postgres"

    def __init__(self, *, durable: bool = True, max_connections: int = 300) -> None:
        super().__init__()
        self.durable = durable
        self.max_connections = max_connections
        self.user = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "kefu", *, driver: str = "postgresql+psycopg") -> str:
        """A URL of ``database`` (SQLAlchemy's form by default; ``driver="postgresql"`` for libpq)."""
        return f"{driver}://kefu@127.0.0.1:{self.port}/{database}"

    def start(self) -> Self:
        """Create the cluster and the ``kefu`` database, start the server."""
        initdb, postgres = _pg_bin("initdb"), _pg_bin("postgres")
        if initdb is None or postgres is None:
            raise RuntimeError("PostgreSQL is not installed (make services, or apt-get install postgresql)")
        data = self.dir / "data"
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        command = [initdb, "-D", str(data), "-U", "kefu", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"]
        if self.user is not None and os.geteuid() == 0:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-2000:]}")
        options = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.dir),
            "max_connections": str(self.max_connections),
            "shared_buffers": "128MB",
        }
        if not self.durable:
            options |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        argv = [postgres, "-D", str(data)]
        for key, value in options.items():
            argv += ["-c", f"{key}={value}"]
        self._spawn(argv, user=self.user)
        self._wait_accepting()
        self.psql("CREATE DATABASE kefu", database="postgres")
        return self

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [_pg_bin("pg_isready") or "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), "-U", "kefu"],
                capture_output=True,
                check=False,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL listens but does not accept connections")
            time.sleep(0.1)

    def psql(self, sql: str, *, database: str = "kefu") -> str:
        """Run SQL with ``psql`` and return what it printed (unaligned, tuples only).

        Raises:
            RuntimeError: psql failed.
        """
        psql = _pg_bin("psql") or "psql"
        done = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "kefu", "-d", database, "-At", "-v",
             "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr.strip()}")
        return done.stdout.strip()


class RedisServer(_Server):
    """A Redis server with persistence off."""

    name = "redis"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        """Start ``redis-server`` on the chosen port."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("Redis is not installed (make services, or apt-get install redis-server)")
        argv = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.dir), "--daemonize", "no", "--maxclients", "4000"]  # fmt: skip
        self._spawn(argv)
        return self


class NginxServer(_Server):
    """nginx as the load balancer in front of API replicas: round-robin HTTP, WebSockets upgraded.

    A replica that refuses connections (killed) is skipped for the next request; a WebSocket stays on
    the replica it was opened on until that replica goes away and the client reconnects.
    """

    name = "nginx"

    def __init__(self, upstreams: list[int]) -> None:
        super().__init__()
        self.upstreams = upstreams

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        """The nginx.conf written into the server's folder (the same shape as ``deploy/nginx.conf``)."""
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in self.upstreams)
        user = "user root;\n" if os.geteuid() == 0 else ""
        return f"""{user}worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream kefu {{
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{
            proxy_pass http://kefu;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_connect_timeout 2s;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""

    def start(self) -> Self:
        """Write the configuration and start nginx in the foreground."""
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if binary is None:
            raise RuntimeError("nginx is not installed (make services, or apt-get install nginx-light)")
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config())
        self._spawn([binary, "-p", str(self.dir), "-c", str(conf), "-g", "daemon off;"])
        return self


class ChromaServer(_Server):
    """A Chroma server (``chroma run``, from the ``chromadb`` package in this environment) with telemetry off.

    Its data lives in the server's folder, which ``kill`` keeps: ``start`` again serves the same
    collections on the same port.
    """

    name = "chroma"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, what ``KEFU_CHROMA_URL`` takes."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start ``chroma run`` on the chosen port and wait until its heartbeat answers."""
        found = Path(sys.executable).parent / "chroma"
        binary = str(found) if found.exists() else shutil.which("chroma")
        if binary is None:
            raise RuntimeError("the chroma command is missing (make setup installs chromadb)")
        # ``env`` sets the variable for the server alone; the Rust server reads it for telemetry.
        argv = ["env", "ANONYMIZED_TELEMETRY=False", binary, "run", "--path", str(self.dir / "data"),
                "--host", "127.0.0.1", "--port", str(self.port)]  # fmt: skip
        self._spawn(argv)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=2).status_code == httpx.codes.OK:
                    return self
            if time.monotonic() > deadline:
                tail = self.log.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"chroma listens but its heartbeat does not answer\n{tail}")
            time.sleep(0.1)
