"""choirci.yaml / [tool.choirci] loading: typed results and one-line file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci import config
from choirci.errors import ConfigError

GOOD = """\
closures:
  sandbox: ./sandbox#sandbox
  desktop: ./dioxus-desktop#desktop
loops:
  fmt: cargo fmt --all --check
  check-sandbox:
    run: [cargo, check, -p, sandbox]
    develop: ./sandbox
    timeout: 600
rust:
  timeout: 30
  targets:
    - crate: sandbox
      test: desktop_api_test
      tests: [test_health_check]
    - crate: sandbox
      test: supervision_test
      features: supervision_refactor
hosts:
  grind: local://
  prod: ssh://root@choiros-prod
release:
  domain: os.choir.chat
redact: [MY_PRIVATE_THING]
evidence: out/evidence
"""


def write(tmp_path: Path, text: str, name: str = "choirci.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_config_is_typed(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    assert [c.name for c in cfg.closures] == ["sandbox", "desktop"]
    assert cfg.closure("desktop").installable == "./dioxus-desktop#desktop"
    assert cfg.closure("desktop").flake == "./dioxus-desktop"
    fmt, check = cfg.loops
    assert fmt.argv == ("cargo", "fmt", "--all", "--check") and fmt.develop is None
    assert check.develop == "./sandbox" and check.timeout == 600.0
    assert check.command == "cargo check -p sandbox"
    first, second = cfg.rust.targets
    assert first.id == "sandbox::desktop_api_test" and first.tests == ("test_health_check",)
    assert second.features == ("supervision_refactor",)
    assert cfg.rust.timeout == 30.0
    assert cfg.hosts == {"grind": "local://", "prod": "ssh://root@choiros-prod"}
    assert cfg.release.domain == "os.choir.chat"
    assert cfg.redact == ("MY_PRIVATE_THING",)
    assert cfg.evidence_dir == tmp_path.resolve() / "out/evidence"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "closures:\n  sandbox: ./sandbox#sandbox\n  hypervisor: hypervisor\n",
            "choirci.yaml:3: closures.hypervisor: expected 'path#attr' "
            "(e.g. './sandbox#sandbox'), got 'hypervisor'",
        ),
        (
            "rust:\n  targets:\n    - crate: sandbox\n      tset: x\n",
            "choirci.yaml:4: rust.targets[0].tset: unknown key (did you mean 'test'?); "
            "allowed: crate, test, kind, tests, features, manifest",
        ),
        (
            "rust:\n  targets:\n    - crate: sandbox\n",
            "choirci.yaml:3: rust.targets[0]: missing 'test:'",
        ),
        ("clossures: {}\n", "choirci.yaml:1: clossures: unknown key (did you mean 'closures'?)"),
        ("loops:\n  fmt:\n    run: 'cargo fmt\n", "choirci.yaml:3: malformed YAML"),
        ("rust:\n  timeout: soon\n", "choirci.yaml:2: rust.timeout: expected a positive number"),
        ("hosts:\n  grind: choiros-grind\n", "choirci.yaml:2: hosts.grind: expected a testinfra"),
        ("nix:\n  missing: ignore\n", "choirci.yaml:2: nix.missing: expected 'error' or 'skip'"),
        ("closures:\n  a: ./a#a\n  a: ./b#b\n", "choirci.yaml:3: closures.a: key appears twice"),
        ("- just\n- a list\n", "choirci.yaml:1: : expected a mapping"),
    ],
)
def test_bad_config_is_one_line_with_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as excinfo:
        config.load(write(tmp_path, text))
    message = str(excinfo.value)
    assert message.startswith(expected), message
    assert "\n" not in message


def test_unknown_closure_lists_known_ones(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, GOOD))
    with pytest.raises(ConfigError, match="unknown closure 'hyper'; known closures: sandbox, desktop"):
        cfg.closure("hyper")


def test_pyproject_table_is_an_alternative(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(
        tmp_path,
        '[project]\nname = "x"\n\n[tool.choirci.closures]\nsandbox = "./sandbox#sandbox"\n'
        'bad = "nope"\n',
        "pyproject.toml",
    )
    found = config.find_config(tmp_path / "sub" / "dir")
    assert found == tmp_path / "pyproject.toml"
    with pytest.raises(ConfigError, match=r"^pyproject.toml:6: closures.bad: expected 'path#attr'"):
        config.load(found)


def test_discovery_prefers_explicit_then_env_then_nearest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ws" / "deep").mkdir(parents=True)
    write(tmp_path / "ws", "closures:\n  near: ./n#n\n")
    other = write(tmp_path, "closures:\n  explicit: ./e#e\n", "other.yaml")
    env = write(tmp_path, "closures:\n  env: ./v#v\n", "env.yaml")
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)
    assert config.resolve(None, tmp_path / "ws" / "deep").closures[0].name == "near"
    monkeypatch.setenv("CHOIRCI_CONFIG", str(env))
    assert config.resolve(None, tmp_path / "ws" / "deep").closures[0].name == "env"
    assert config.resolve(str(other), tmp_path).closures[0].name == "explicit"


def test_no_config_found_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="no choirci.yaml found in .*pass --choirci-config"):
        config.resolve(None, tmp_path)


def test_bundled_example_workspace_config_loads() -> None:
    example = Path(__file__).resolve().parent.parent / "fixtures/choiros-mini/choirci.yaml"
    if not example.exists():
        pytest.fail("fixtures/choiros-mini/choirci.yaml is missing")
    cfg = config.load(example)
    assert {c.name for c in cfg.closures} == {"sandbox", "hypervisor", "desktop"}
    assert cfg.rust.targets, "the example must configure targeted Rust tests"
