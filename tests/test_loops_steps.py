"""CI-parity loop steps as items: plain argv steps and steps inside a real ``nix develop``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nix_support import make_workspace, one, properties, use_nix

LOCK = "nix:\n  lock_path: {lock}\n  lock_timeout: 30\n"


def grind(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, list[str]]]]:
    junit = pytester.path / f"junit-{time.monotonic_ns()}.xml"
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-rA", "-m", "loop",
                                           f"--junitxml={junit}", *args)
    return result, properties(junit) if junit.exists() else {}


def write_config(pytester: pytest.Pytester, loops: str) -> None:
    lock = LOCK.format(lock=pytester.path / "build.lock")
    (pytester.path / "choirci.yaml").write_text(f"loops:\n{loops}{lock}")


def test_steps_pass_and_fail_with_exact_command(pytester: pytest.Pytester) -> None:
    write_config(pytester, '  fmt: echo formatted\n'
                           '  check:\n    run: [sh, -c, "echo to-stdout; echo to-stderr >&2; exit 4"]\n')
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert one(props["loops::fmt"], "command") == "echo formatted"
    assert one(props["loops::fmt"], "exit_status") == "exit status 0"
    check = props["loops::check"]
    assert one(check, "command") == "sh -c 'echo to-stdout; echo to-stderr >&2; exit 4'"
    assert one(check, "exit_status") == "exit status 4"
    result.stdout.fnmatch_lines([
        "*loop step check: `sh -c 'echo to-stdout; echo to-stderr >&2; exit 4'` exit status 4",
        "*last lines of its output:",
    ])
    # Both streams are in the tail; their relative order is up to the two reader threads.
    tail = result.stdout.str().split("last lines of its output:", 1)[1]
    assert "to-stdout" in tail and "to-stderr" in tail


def test_step_runs_in_the_workspace_root(pytester: pytest.Pytester) -> None:
    write_config(pytester, "  where: [sh, -c, 'test -f choirci.yaml && pwd']\n")
    sub = pytester.path / "deep" / "er"
    sub.mkdir(parents=True)
    result = pytester.runpytest_subprocess("--grind", "-m", "loop", "-p", "no:cacheprovider",
                                           f"--rootdir={pytester.path}",
                                           f"--choirci-config={pytester.path / 'choirci.yaml'}")
    result.assert_outcomes(passed=1)


def test_timeout_kills_the_step(pytester: pytest.Pytester) -> None:
    write_config(pytester, "  slow:\n    run: sleep 30\n    timeout: 1\n")
    started = time.monotonic()
    result, _props = grind(pytester)
    assert time.monotonic() - started < 20
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*loop step slow: `sleep 30` timed out*loops.slow.timeout is 1s*"])


def test_missing_program_is_an_error(pytester: pytest.Pytester) -> None:
    write_config(pytester, "  ghost: no-such-program-choirci --check\n")
    result, _ = grind(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*choirci: loops.ghost: 'no-such-program-choirci' not found on PATH*"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.slow
def test_step_inside_nix_develop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``nix develop ./pkg#dev --command ...``: the shell's variables reach the step."""
    use_nix(monkeypatch, pytester.path)
    lock = LOCK.format(lock=pytester.path / "build.lock")
    config = ("loops:\n  in-shell:\n    run: [sh, -c, 'echo mark=$SHELL_MARK; test \"$SHELL_MARK\" = grind']\n"
              "    develop: ./pkg#dev\n"
              "  wrong-shell:\n    run: [sh, -c, 'test \"$SHELL_MARK\" = grind']\n    develop: ./pkg#other\n"
              + lock)
    make_workspace(pytester.path, {"unused": "echo > $out"}, config,
                   shells={"dev": "grind", "other": "elsewhere"})
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, failed=1)
    command = one(props["loops::in-shell"], "command")
    assert command.startswith("nix --extra-experimental-features 'nix-command flakes' develop './pkg#dev' "
                              "--command sh -c ")
    assert one(props["loops::in-shell"], "develop") == "./pkg#dev"
    result.stdout.fnmatch_lines([("*loop step wrong-shell: `nix * develop './pkg#other' --command sh -c *` "
                                 "exit status 1*")])


def test_develop_step_with_nix_missing_skips_when_configured(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(pytester, "  in-shell:\n    run: cargo check -p sandbox\n    develop: ./sandbox\n")
    config = (pytester.path / "choirci.yaml").read_text().replace("nix:\n", "nix:\n  missing: skip\n")
    (pytester.path / "choirci.yaml").write_text(config)
    monkeypatch.setenv("PATH", str(Path(pytester.path / "empty-bin")))
    result, _ = grind(pytester)
    result.assert_outcomes(skipped=1)
