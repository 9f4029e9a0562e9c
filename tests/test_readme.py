"""The README's Quick start stays true: two commands, and CI runs the second one."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert block, "Quick start has no ```sh block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def test_quick_start_is_exactly_two_commands_that_exist() -> None:
    demo, test = quick_start_commands()
    for command in (demo, test):
        script = REPO / command.split()[0]
        assert script.is_file() and os.access(script, os.X_OK), command
    assert "pytest" in (REPO / demo.split()[0]).read_text() and "--grind" in (
        REPO / demo.split()[0]
    ).read_text()


def test_ci_runs_the_readme_test_command() -> None:
    _demo, test = quick_start_commands()
    ci = (REPO / ".ci/run").read_text()
    assert re.search(rf"^exec {re.escape(test)}\b", ci, re.MULTILINE), ci


def test_config_reference_example_is_a_valid_config(tmp_path: Path) -> None:
    from choirci import config

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Config reference", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block, "Config reference has no ```yaml block"
    path = tmp_path / "choirci.yaml"
    path.write_text(block.group(1))
    # The example points at a crate outside the workspace; the loader checks it exists.
    (tmp_path / "dioxus-desktop").mkdir()
    (tmp_path / "dioxus-desktop" / "Cargo.toml").write_text("[package]\n")
    (tmp_path / "checks" / "gates").mkdir(parents=True)  # `gates:` must name a directory
    cfg = config.load(path)
    assert [c.name for c in cfg.closures] == ["sandbox", "hypervisor", "desktop"]
    assert cfg.rust.targets and cfg.loops and cfg.hosts
