"""The deployment files: they parse, name only real settings, probe real routes, and nginx runs its config.

No container engine or cluster runs here, so the compose file and the manifests are checked as data
(kinds, probes, GPU reservation, references between objects, settings that validate) and the
nginx configuration is loaded by the real nginx and proxies real requests.
"""

from __future__ import annotations

import http.server
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import typer.core
import typer.main
import yaml

from core.errors import ConfigError
from core.settings import Settings
from core.vault import generate_key, vault_keys
from evals.localservers import free_port, missing, wait_for_port
from serving.app import create_app
from serving.auth import load_secret
from serving.cli import app as cli

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
NGINX_CONF = DEPLOY / "nginx.conf"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCS = ROOT / "docs" / "deploy.md"

SETTING_NAMES = {f"KEFU_{name.upper()}" for name in Settings.model_fields}
KEFU_VARIABLE = re.compile(r"\bKEFU_[A-Z0-9_]+\b")
YAML_FILES = sorted([COMPOSE, *K8S.glob("*.yaml")])
SERVICES = {"api", "postgres", "redis", "chroma", "vllm", "nginx", "migrate"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def manifests() -> list[dict[str, Any]]:
    """The objects ``kubectl apply -k deploy/k8s`` creates."""
    [kustomization] = documents(K8S / "kustomization.yaml")
    return [doc for name in kustomization["resources"] for doc in documents(K8S / name)]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def compose() -> dict[str, Any]:
    [doc] = documents(COMPOSE)
    return doc


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable syntax: ``$$``, ``${X}``, ``${X:-default}``, ``${X:?error}``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if op == ":?" and not current:
            raise ValueError(arg)
        if op == ":-" and not current:
            return arg
        return current

    return re.sub(r"\$\$|\$\{([A-Za-z0-9_]+)(?:(:[-?])([^}]*))?\}", substitute, value)


def settings_from(environment: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in [name for name in os.environ if name.startswith("KEFU_")]:
        monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


def filled_secrets() -> dict[str, str]:
    return {
        "POSTGRES_PASSWORD": "pw-" + secrets.token_hex(8),
        "KEFU_VAULT_KEY": generate_key(),
        "KEFU_SECRET_KEY": secrets.token_urlsafe(48),
    }


def served_paths() -> set[str]:
    """The HTTP paths of the real app (built, not started: the service starts in its lifespan)."""
    return set(create_app(Settings(_env_file=None)).openapi()["paths"])


# --- every file -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda path: path.name)
def test_yaml_parses(path: Path) -> None:
    assert documents(path), f"{path} is empty"


@pytest.mark.parametrize(
    "path",
    [COMPOSE, ENV_EXAMPLE, DOCKERFILE, NGINX_CONF, DOCS, *sorted(K8S.glob("*.yaml"))],
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_every_kefu_variable_is_a_setting(path: Path) -> None:
    named = set(KEFU_VARIABLE.findall(path.read_text(encoding="utf-8")))
    assert not named - SETTING_NAMES, f"{path.name} names settings that do not exist: {sorted(named - SETTING_NAMES)}"


def test_probes_use_paths_the_app_serves() -> None:
    served = served_paths()
    probes = set(re.findall(r"/(?:healthz|readyz)\b", COMPOSE.read_text() + DOCKERFILE.read_text()))
    [container] = one("Deployment", "kefu-api")["spec"]["template"]["spec"]["containers"]
    probes |= {container[probe]["httpGet"]["path"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert probes == {"/healthz", "/readyz"}
    assert probes <= served


# ``kefu`` where a command starts: a line, a code span, ``$(``, after ``&&``/``then``, ``.../bin/kefu``.
KEFU_COMMAND = re.compile(r"(?:^\s*|[`(\"']|&& |then |/bin/|exec api )kefu ([a-z]+)(?: ([a-z]+))?", re.MULTILINE)


def test_kefu_commands_exist() -> None:
    """Every ``kefu ...`` the deployment files and the guide run is a command of the CLI."""
    commands = typer.main.get_command(cli)
    assert isinstance(commands, typer.core.TyperGroup)
    texts = [path.read_text() for path in (COMPOSE, ENV_EXAMPLE, DOCKERFILE, DOCS, *K8S.glob("*.yaml"))]
    used = {match.groups() for text in texts for match in KEFU_COMMAND.finditer(text)}
    assert ("db", "upgrade") in used
    for first, second in used:
        assert first in commands.commands, f"kefu {first}"
        command = commands.commands[first]
        if isinstance(command, typer.core.TyperGroup):
            assert second in command.commands, f"kefu {first} {second}"


# --- Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_installs_the_locked_dependencies_without_model_weights() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert "pip install -c requirements.lock ." in text
    assert "COPY pyproject.toml requirements.lock" in text
    assert re.search(r"^USER kefu$", text, re.MULTILINE)
    assert "KEFU_HOST=0.0.0.0" in text
    assert 'ENTRYPOINT ["kefu"]' in text and 'CMD ["serve"]' in text
    assert not re.search(r"models fetch|\.gguf|llama-server", text.split("\nFROM", 1)[1])


def test_dockerfile_copies_every_package() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    copied = set(re.findall(r"^COPY (\w+) \1$", DOCKERFILE.read_text(), re.MULTILINE))
    assert {pattern.rstrip("*") for pattern in packages} == copied


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().splitlines())
    assert {".venv", "var", ".git", ".env", "deploy/.env"} <= ignored


# --- docker-compose.yml -----------------------------------------------------------------------


def test_compose_runs_the_cluster_with_health_checks() -> None:
    services = compose()["services"]
    assert set(services) == SERVICES
    for name in ("api", "postgres", "redis", "chroma", "vllm"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["api"]["deploy"]["replicas"] == 3
    assert "ports" not in services["api"], "replicas are reached through nginx, not host ports"
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["volumes"]


def test_compose_pins_every_image() -> None:
    for name, service in compose()["services"].items():
        image = interpolate(service["image"], env_example())
        assert ":" in image and not image.endswith((":latest", ":main")), f"{name}: {image}"


def test_compose_chroma_server_matches_the_pinned_client() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [client] = [dep.split("==")[1] for dep in dependencies if dep.startswith("chromadb==")]
    assert compose()["services"]["chroma"]["image"] == f"chromadb/chroma:{client}"
    [manifest] = one("StatefulSet", "chroma")["spec"]["template"]["spec"]["containers"]
    assert manifest["image"] == f"chromadb/chroma:{client}"


def test_compose_reserves_a_gpu_for_vllm() -> None:
    vllm = compose()["services"]["vllm"]
    [device] = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    assert vllm["image"].startswith("vllm/vllm-openai:v")
    command = vllm["command"]
    assert command[command.index("--served-model-name") + 1] == "kefu-chat"
    assert compose()["x-kefu-env"]["KEFU_LLM_MODEL"] == "kefu-chat"


def test_compose_migrates_before_the_api_starts() -> None:
    services = compose()["services"]
    assert services["api"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    for store in ("postgres", "redis", "chroma"):
        assert services["api"]["depends_on"][store] == {"condition": "service_healthy"}
    assert services["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "kefu db upgrade" in " ".join(services["migrate"]["command"])
    assert services["nginx"]["depends_on"]["api"] == {"condition": "service_healthy"}
    assert "./nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


def test_compose_refuses_to_start_without_secrets() -> None:
    environment = compose()["x-kefu-env"]
    example = env_example()
    for secret in ("KEFU_VAULT_KEY", "KEFU_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert example[secret] == "", f"{secret} must be empty in .env.example"
    with pytest.raises(ValueError, match="KEFU_VAULT_KEY"):
        interpolate(environment["KEFU_VAULT_KEY"], example)
    with pytest.raises(ValueError, match="POSTGRES_PASSWORD"):
        interpolate(environment["KEFU_DATABASE_URL"], example)


def test_compose_environment_is_valid_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**env_example(), **filled_secrets()}
    environment = {name: interpolate(str(value), env) for name, value in compose()["x-kefu-env"].items()}
    settings = settings_from(environment, monkeypatch)
    assert settings.on_postgres
    assert settings.resolved_database_url == f"postgresql+psycopg://kefu:{env['POSTGRES_PASSWORD']}@postgres:5432/kefu"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.chroma_url == "http://chroma:8000"
    assert settings.llm_backend == "vllm"
    assert settings.endpoints == ["http://vllm:8000/v1"]
    assert not settings.demo_pages
    assert settings.api_auth
    vault_keys(settings)
    load_secret(settings)


# --- Kubernetes -------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest() -> None:
    [kustomization] = documents(K8S / "kustomization.yaml")
    listed = set(kustomization["resources"])
    on_disk = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed <= on_disk
    # The managed-database alternative replaces postgres.yaml; both define the Service `postgres`.
    assert on_disk - listed == {"postgres-external.yaml"}
    assert kustomization["namespace"] == one("Namespace", "kefu")["metadata"]["name"]


def test_k8s_has_the_cluster_kinds() -> None:
    kinds = {doc["kind"] for doc in manifests()}
    assert {
        "Namespace",
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "Job",
        "Ingress",
    } <= kinds


def test_api_deployment_probes_drains_and_bounds_its_resources() -> None:
    deployment = one("Deployment", "kefu-api")
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    sleep = container["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(sleep[1])
    for bound in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][bound])
    assert {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref} == {"kefu-config"}
    assert {ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref} == {"kefu-secrets"}
    assert pod["securityContext"]["runAsNonRoot"]


def test_hpa_scales_the_api_on_cpu() -> None:
    hpa = one("HorizontalPodAutoscaler", "kefu-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "kefu-api"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}


def test_postgres_is_a_stateful_set_or_an_external_service() -> None:
    statefulset = one("StatefulSet", "postgres")
    service = one("Service", "postgres")
    assert service["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == "postgres"
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    [external] = documents(K8S / "postgres-external.yaml")
    assert (external["kind"], external["metadata"]["name"]) == ("Service", "postgres")
    assert external["spec"]["type"] == "ExternalName"


def test_vllm_gets_a_gpu() -> None:
    [container] = one("Deployment", "vllm")["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["args"][container["args"].index("--served-model-name") + 1] == "kefu-chat"


def test_migration_job_upgrades_the_schema() -> None:
    [container] = one("Job", "kefu-migrate")["spec"]["template"]["spec"]["containers"]
    assert "kefu db upgrade" in " ".join(container["args"])
    assert container["image"] == one("Deployment", "kefu-api")["spec"]["template"]["spec"]["containers"][0]["image"]


def test_ingress_routes_to_the_api_and_keeps_sockets_open() -> None:
    ingress = one("Ingress", "kefu")
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    [rule] = ingress["spec"]["rules"]
    [path] = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = one("Service", backend["name"])
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


def test_every_service_selects_a_workload() -> None:
    pods = [
        doc["spec"]["template"]["metadata"]["labels"]
        for doc in manifests()
        if doc["kind"] in ("Deployment", "StatefulSet")
    ]
    for service in (doc for doc in manifests() if doc["kind"] == "Service"):
        selector = service["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pods), service["metadata"]["name"]


def test_k8s_settings_are_valid_cluster_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    config = one("ConfigMap", "kefu-config")["data"]
    secret = one("Secret", "kefu-secrets")["stringData"]
    kefu_secrets = {name: value for name, value in secret.items() if name.startswith("KEFU_")}
    filled = filled_secrets()
    settings = settings_from({**config, **kefu_secrets, "KEFU_VAULT_KEY": filled["KEFU_VAULT_KEY"]}, monkeypatch)
    assert settings.on_postgres
    assert settings.redis_url and settings.chroma_url
    assert settings.llm_backend == "vllm"
    assert settings.endpoints == ["http://vllm:8000/v1"]
    assert settings.db_pool_size + settings.db_max_overflow <= 10
    [postgres] = one("StatefulSet", "postgres")["spec"]["template"]["spec"]["containers"]
    max_connections = int(postgres["args"][postgres["args"].index("-c") + 1].split("=")[1])
    hpa = one("HorizontalPodAutoscaler", "kefu-api")
    assert hpa["spec"]["maxReplicas"] * (settings.db_pool_size + settings.db_max_overflow) < max_connections


def test_example_secret_placeholders_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = one("Secret", "kefu-secrets")["stringData"]
    settings = settings_from({name: value for name, value in secret.items() if name.startswith("KEFU_")}, monkeypatch)
    with pytest.raises(ConfigError):
        vault_keys(settings)
    with pytest.raises(ConfigError, match="32 characters"):
        load_secret(settings)


# --- nginx.conf -------------------------------------------------------------------------------


def test_nginx_conf_upgrades_websockets_and_fails_over() -> None:
    text = NGINX_CONF.read_text()
    for directive in (
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_next_upstream error timeout http_502 http_503;",
        "proxy_read_timeout 3600s;",
        "proxy_buffering off;",
    ):
        assert directive in text, directive
    assert re.search(r"map \$http_upgrade \$connection_upgrade \{\s*default upgrade;\s*''\s+close;", text)
    assert "server api:8000 resolve" in text


class _Recorder(http.server.BaseHTTPRequestHandler):
    """An upstream that answers every GET with 200 and remembers the headers it got."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append({key.lower(): value for key, value in self.headers.items()})
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def rendered_nginx_conf(folder: Path, listen: int, upstreams: list[int]) -> Path:
    """deploy/nginx.conf with loopback addresses and private paths; every directive kept as shipped.

    Docker's DNS name ``api`` becomes one ``server`` line per loopback port (without ``resolve``,
    which takes a host name and needs nginx 1.27.3; Debian's is older), logs and temporary files go
    to ``folder``, and as root the workers stay root so they can use it.
    """
    text = NGINX_CONF.read_text()
    servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;" for port in upstreams)
    text, count = re.subn(r"^\s*server api:8000 resolve [^;]*;$", servers, text, flags=re.MULTILINE)
    assert count == 1
    text = text.replace("listen 80;", f"listen 127.0.0.1:{listen};").replace("/var/log/nginx/", f"{folder}/")
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    temp = "".join(f"    {kind}_temp_path {folder}/{kind};\n" for kind in kinds)
    text = text.replace("http {\n", "http {\n" + temp, 1)
    user = "user root;\n" if os.geteuid() == 0 else ""
    conf = folder / "nginx.conf"
    conf.write_text(f"{user}pid {folder}/nginx.pid;\n{text}")
    return conf


@pytest.fixture
def nginx_binary() -> str:
    assert "nginx-light" not in missing(), "nginx is missing: `make services` installs it"
    return shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def upstream() -> Iterator[int]:
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_nginx_accepts_the_shipped_config(nginx_binary: str, tmp_path: Path) -> None:
    conf = rendered_nginx_conf(tmp_path, free_port(), [free_port(), free_port(), free_port()])
    done = subprocess.run(
        [nginx_binary, "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr


def test_nginx_upgrades_websockets_and_skips_a_dead_replica(nginx_binary: str, upstream: int, tmp_path: Path) -> None:
    dead = free_port()  # nothing listens there: a killed replica
    listen = free_port()
    conf = rendered_nginx_conf(tmp_path, listen, [dead, upstream])
    process = subprocess.Popen(
        [nginx_binary, "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "error.log"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(listen, timeout_s=15, process=process)
        statuses = [_get(listen, "/readyz", {}) for _ in range(4)]
        upgrade = _get(listen, "/v1/conversations/c-1/ws", {"Upgrade": "websocket", "Connection": "Upgrade"})
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert statuses == [200] * 4, "a request that met the dead replica went on to the live one"
    assert upgrade == 200
    plain, *_, socket_request = _Recorder.seen
    assert socket_request["upgrade"] == "websocket"
    assert socket_request["connection"].lower() == "upgrade"
    assert "upgrade" not in plain
    assert plain["x-forwarded-for"] == "127.0.0.1"


def _get(port: int, path: str, headers: dict[str, str]) -> int:
    """One HTTP/1.1 GET over a raw socket (so the Upgrade header goes out as written); the status code."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    if "Connection" not in headers:
        lines.append("Connection: close")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + 10
        response = b""
        while b"\r\n" not in response and time.monotonic() < deadline:
            response += connection.recv(4096)
    return int(response.split(b" ", 2)[1])
