"""The confidence policy, read from the shipped or a custom TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.policy import Policy
from core.errors import ConfigError


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_defaults() -> None:
    policy = Policy.load()
    assert policy.accept == 0.8
    assert policy.gap == 0.3
    assert policy.candidates == 3
    assert policy.unsure_below == 0.45
    assert policy.clarify_limit == 2
    assert policy.handoff_at == "angry"
    assert policy.dissatisfied_streak == 3


def test_the_shipped_file_matches_the_dataclass_defaults() -> None:
    assert Policy.load() == Policy()


def test_a_custom_file_overrides_values(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        """
[intent]
accept = 0.9
gap = 0.2
candidates = 4
unsure_below = 0.5

[fallback]
clarify_limit = 3

[emotion]
handoff_at = "dissatisfied"
dissatisfied_streak = 2
""",
    )
    assert Policy.load(path) == Policy(
        accept=0.9, gap=0.2, candidates=4, unsure_below=0.5, clarify_limit=3, handoff_at="dissatisfied",
        dissatisfied_streak=2,
    )  # fmt: skip


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    policy = Policy.load(_toml(tmp_path, "[intent]\naccept = 0.95\n"))
    assert policy.accept == 0.95
    assert policy.gap == 0.3
    assert policy.unsure_below == 0.45
    assert policy.clarify_limit == 2
    assert policy.handoff_at == "angry"


def test_an_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    assert Policy.load(_toml(tmp_path, "")) == Policy()


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="acept"):
        Policy.load(_toml(tmp_path, "[intent]\nacept = 0.9\n"))


def test_unknown_keys_in_any_section_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="patience"):
        Policy.load(_toml(tmp_path, "[fallback]\nclarify_limit = 2\npatience = 5\n"))


def test_unsure_below_must_not_exceed_accept(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsure_below"):
        Policy.load(_toml(tmp_path, "[intent]\naccept = 0.6\nunsure_below = 0.7\n"))


def test_unsure_below_may_equal_accept(tmp_path: Path) -> None:
    policy = Policy.load(_toml(tmp_path, "[intent]\naccept = 0.6\nunsure_below = 0.6\n"))
    assert policy.unsure_below == policy.accept == 0.6


@pytest.mark.parametrize(
    "line", ["accept = 1.5", "accept = -0.1", "gap = 1.01", "gap = -0.5", "unsure_below = -0.01", "unsure_below = 2.0"]
)
def test_thresholds_outside_zero_to_one_are_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Policy.load(_toml(tmp_path, f"[intent]\n{line}\n"))


@pytest.mark.parametrize("line", ["accept = 1.0\nunsure_below = 0.0", "gap = 0.0", "gap = 1.0"])
def test_thresholds_at_the_bounds_are_allowed(tmp_path: Path, line: str) -> None:
    Policy.load(_toml(tmp_path, f"[intent]\n{line}\n"))


@pytest.mark.parametrize("value", ["calm", "confused", "furious", ""])
def test_handoff_at_must_be_dissatisfied_or_angry(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="handoff_at"):
        Policy.load(_toml(tmp_path, f'[emotion]\nhandoff_at = "{value}"\n'))


@pytest.mark.parametrize(
    "text",
    ["[intent]\ncandidates = 1\n", "[fallback]\nclarify_limit = 0\n", "[emotion]\ndissatisfied_streak = 0\n"],
)
def test_impossible_limits_are_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        Policy.load(_toml(tmp_path, text))


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="policy"):
        Policy.load(_toml(tmp_path, "[intent\naccept = = 0.9\n"))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        Policy.load(tmp_path / "missing.toml")


def test_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Policy.load(tmp_path)


def test_direct_construction_is_checked_too() -> None:
    with pytest.raises(ConfigError):
        Policy(accept=0.3)  # below the default unsure_below
    with pytest.raises(ConfigError):
        Policy(handoff_at="calm")
