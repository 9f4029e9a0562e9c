"""What --area/--closure/--rust-test leave out is named, so a gate cannot pass on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci import config
from choirci.narrowing import left_out
from choirci.settings import Settings

CONFIG = """\
closures:
  sandbox: ./sandbox#sandbox
  hypervisor: ./hypervisor#hypervisor
loops:
  fmt: cargo fmt --check
rust:
  targets:
    - {crate: sandbox, test: desktop_api_test, tests: [test_health_check, test_run]}
    - {crate: sandbox, test: supervision_test}
    - {crate: hypervisor, test: auth_gate_test}
hosts:
  grind: local://
release:
  prompt_url: http://127.0.0.1:8080
"""


@pytest.fixture
def cfg(tmp_path: Path) -> config.Config:
    path = tmp_path / "choirci.yaml"
    path.write_text(CONFIG)
    return config.load(path)


def settings(cfg: config.Config, closures: tuple[str, ...] = (), rust: tuple[str, ...] = (),
             areas: tuple[str, ...] | None = None) -> Settings:
    chosen = tuple(cfg.closure(name) for name in closures) or cfg.closures
    return Settings(config=cfg, closures=chosen, rust_selection=rust, evidence_dir=Path("e"),
                    invocation_dir=Path("."), areas=areas)


def ids(found: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {entry.nodeid: entry.reason for entry in found}


def test_a_full_run_leaves_nothing_out(cfg: config.Config) -> None:
    assert left_out(settings(cfg)) == []


def test_closure_selection(cfg: config.Config) -> None:
    assert ids(left_out(settings(cfg, closures=("sandbox",)))) == {
        "closures::hypervisor": "not selected (--closure)"
    }


def test_area_selection_names_every_other_area(cfg: config.Config) -> None:
    found = ids(left_out(settings(cfg, areas=("closures",))))
    assert found == {
        "loops::fmt": "not selected (--area)",
        "hosts::*": "host checks not selected (--area)",
        "release::prompt_smoke": "not selected (--area)",
        "rust::sandbox::desktop_api_test::*": "not selected (--area)",
        "rust::sandbox::supervision_test::*": "not selected (--area)",
        "rust::hypervisor::auth_gate_test::*": "not selected (--area)",
    }
    assert next(e for e in left_out(settings(cfg, areas=("closures",)))
                if e.nodeid == "hosts::*").markers == ("host",)


def test_rust_selection(cfg: config.Config) -> None:
    found = ids(left_out(settings(cfg, rust=("sandbox::desktop_api_test::test_health_check",
                                             "sandbox::supervision_test::test_one"))))
    assert found == {
        "rust::sandbox::desktop_api_test::test_run": "not selected (--rust-test)",
        "rust::sandbox::supervision_test::*": "other tests not selected (--rust-test)",
        "rust::hypervisor::auth_gate_test::*": "not selected (--rust-test)",
    }


def test_whole_binary_selection_leaves_that_binary_in(cfg: config.Config) -> None:
    found = ids(left_out(settings(cfg, rust=("sandbox::supervision_test",))))
    assert "rust::sandbox::supervision_test::*" not in found
    assert "rust::hypervisor::auth_gate_test::*" in found
