"""Pure parts of the cargo adapter and the rust planning/judging: command lines, cargo's JSON,
selection parsing, and how a run's verdicts are decided (no processes started)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from choirci.config.rust import RustSettings, RustTarget
from choirci.errors import ConfigError
from choirci.nix.adapter import Nix
from choirci.proc import CommandResult
from choirci.rust import libtest
from choirci.rust import plan as rustplan
from choirci.rust import run as rustrun
from choirci.rust.cargo import (
    Build,
    Cargo,
    CargoError,
    Package,
    Workspace,
    _absorb,
    _package_name,
    parse_metadata,
)
from choirci.rust.discover import discover
from choirci.rust.run import run_args


@pytest.mark.parametrize(
    ("develop", "binaries", "features", "expected"),
    [
        (None, [("test", "desktop_api_test")], [],
         ["cargo", "test", "--no-run", "--message-format=json", "-p", "sandbox",
          "--test", "desktop_api_test"]),
        (None, [("test", "a"), ("lib", "lib")], ["supervision_refactor", "x"],
         ["cargo", "test", "--no-run", "--message-format=json", "-p", "sandbox",
          "--test", "a", "--lib", "--features", "supervision_refactor,x"]),
        ("./sandbox", [("test", "a")], [],
         ["nix", "--extra-experimental-features", "nix-command flakes", "develop", "./sandbox",
          "--command", "cargo", "test", "--no-run", "--message-format=json", "-p", "sandbox",
          "--test", "a"]),
    ],
)
def test_build_argv(develop: str | None, binaries: list[tuple[str, str]], features: list[str],
                    expected: list[str]) -> None:
    cargo = Cargo(develop=develop, nix=Nix())
    assert cargo.build_argv("sandbox", binaries, features) == expected


def test_build_argv_outside_the_workspace_uses_the_manifest_and_bin_unit_tests() -> None:
    cargo = Cargo(cwd=Path("/w"))
    argv = cargo.build_argv("dioxus-desktop", [("bin", "dioxus-desktop"), ("lib", "lib")], [],
                            manifest="/w/dioxus-desktop/Cargo.toml")
    assert argv == ["cargo", "test", "--no-run", "--message-format=json",
                    "--manifest-path", "dioxus-desktop/Cargo.toml", "-p", "dioxus-desktop",
                    "--bin", "dioxus-desktop", "--lib"]
    # Outside cwd the path stays absolute: `../..` in the evidence would mean nothing.
    assert cargo.build_argv("x", [("lib", "lib")], [], manifest="/elsewhere/x/Cargo.toml")[4:6] == [
        "--manifest-path", "/elsewhere/x/Cargo.toml"]


def test_run_args_list_names_only_for_a_subset() -> None:
    assert run_args(["x"], everything=True, threads=None, ignored="skip", logfile=None) == [
        "--show-output", "--color", "never", "--format", "pretty"]
    assert run_args(["x", "m::y"], everything=False, threads=1, ignored="skip",
                    logfile="/l")[-7:] == ["--logfile", "/l", "--test-threads", "1", "--exact",
                                           "x", "m::y"]
    assert run_args(["x"], everything=True, threads=None, ignored="include", logfile=None
                    )[-1] == "--include-ignored"
    assert run_args(["x"], everything=True, threads=None, ignored="only", logfile=None
                    )[-1] == "--ignored"


@pytest.mark.parametrize(
    ("package_id", "name"),
    [
        ("path+file:///w/sandbox#0.1.0", "sandbox"),
        ("path+file:///w/crates/sb#sandbox@0.1.0", "sandbox"),
        ("sandbox 0.1.0 (path+file:///w/sandbox)", "sandbox"),
    ],
)
def test_package_name_from_every_id_format(package_id: str, name: str) -> None:
    assert _package_name(package_id) == name


def test_metadata_keeps_members_test_targets_and_lib() -> None:
    data = {
        "workspace_root": "/w", "target_directory": "/w/target",
        "workspace_members": ["path+file:///w/sandbox#0.1.0"],
        "packages": [
            {"id": "path+file:///w/sandbox#0.1.0", "name": "sandbox", "version": "0.1.0",
             "manifest_path": "/w/sandbox/Cargo.toml",
             "targets": [{"name": "sandbox", "kind": ["lib"]}, {"name": "sandbox", "kind": ["bin"]},
                         {"name": "desktop_api_test", "kind": ["test"]}]},
            {"id": "registry+x#other@1.0.0", "name": "other", "version": "1.0.0",
             "manifest_path": "/r/other/Cargo.toml", "targets": []},
        ],
    }
    ws = parse_metadata(data)
    assert list(ws.packages) == ["sandbox"]
    # The bin target's unit tests come last.
    assert ws.packages["sandbox"].binaries() == ("lib", "doc", "desktop_api_test", "sandbox")
    assert ws.packages["sandbox"].kinds_named("sandbox") == ("bin",)
    assert ws.packages["sandbox"].kinds_named("lib") == ("lib",)
    assert ws.packages["sandbox"].manifest_dir == Path("/w/sandbox")


def test_a_proc_macro_library_is_a_library() -> None:
    """`cargo test --lib`/`--doc` run a proc-macro crate's tests: its lib and doc are there."""
    data = {"workspace_root": "/w", "target_directory": "/w/target",
            "workspace_members": ["path+file:///w/m#0.1.0"],
            "packages": [{"id": "path+file:///w/m#0.1.0", "name": "m", "version": "0.1.0",
                          "manifest_path": "/w/m/Cargo.toml",
                          "targets": [{"name": "m", "kind": ["proc-macro"]}]}]}
    assert parse_metadata(data).packages["m"].binaries() == ("lib", "doc")


def _message(reason: str, kind: str, name: str, **extra: object) -> dict[str, object]:
    return {"reason": reason, "package_id": "path+file:///w/faults#0.1.0",
            "target": {"kind": [kind], "name": name}, **extra}


def test_cargo_json_is_attributed_per_binary() -> None:
    build = Build(command="cargo test ...")
    shared: list[str] = []
    wanted = {("test", "good"), ("test", "bad")}
    for message in [
        _message("compiler-artifact", "test", "good", profile={"test": True}, executable="/t/good-1"),
        _message("compiler-message", "test", "bad",
                 message={"level": "error", "rendered": "error[E0308]: mismatched types\n"}),
        _message("compiler-message", "test", "bad",
                 message={"level": "warning", "rendered": "warning: unused\n"}),
        _message("compiler-message", "lib", "faults",
                 message={"level": "error", "rendered": "error: in the library\n"}),
    ]:
        _absorb(json.loads(json.dumps(message)), "faults", wanted, build, shared)
    assert build.executables == {("test", "good"): "/t/good-1"}
    assert build.errors == {("test", "bad"): "error[E0308]: mismatched types"}
    assert shared == ["error: in the library"]


def test_selection_parsing() -> None:
    assert rustplan.parse_selection("sandbox::desktop_api_test") == (
        "sandbox", "desktop_api_test", None)
    assert rustplan.parse_selection("s::b::mod::inner::t") == ("s", "b", "mod::inner::t")
    for bad in ("sandbox", "sandbox::", "::b", "a::b::"):
        with pytest.raises(ConfigError, match="expected CRATE::BIN or CRATE::BIN::TEST"):
            rustplan.parse_selection(bad)


def test_wanted_targets_take_features_from_config_and_merge() -> None:
    rust = RustSettings(targets=(
        RustTarget("sandbox", "supervision_test", features=("supervision_refactor",)),
        RustTarget("sandbox", "desktop_api_test", tests=("test_health_check",)),
    ))
    from_config = rustplan.wanted_targets(rust, (), "choirci.yaml")
    assert [(w.binary, w.tests) for w in from_config] == [
        ("supervision_test", None), ("desktop_api_test", ("test_health_check",))]
    assert from_config[1].origin == "choirci.yaml: rust.targets[1] (sandbox::desktop_api_test)"
    picked = rustplan.wanted_targets(rust, (
        "sandbox::supervision_test::a", "sandbox::supervision_test::b", "hypervisor::auth",
    ), "choirci.yaml")
    assert [(w.crate, w.binary, w.features, w.tests) for w in picked] == [
        ("sandbox", "supervision_test", ("supervision_refactor",), ("a", "b")),
        ("hypervisor", "auth", (), None),
    ]


def test_wanted_targets_carry_the_crates_manifest_also_for_rust_test() -> None:
    manifest = Path("/w/dioxus-desktop/Cargo.toml")
    rust = RustSettings(targets=(
        RustTarget("dioxus-desktop", "dioxus-desktop", manifest=manifest),
        RustTarget("sandbox", "desktop_api_test"),
    ))
    assert [w.manifest for w in rustplan.wanted_targets(rust, (), "choirci.yaml")] == [
        str(manifest), ""]
    # --rust-test of another binary of that crate still finds the crate where it lives.
    picked = rustplan.wanted_targets(rust, ("dioxus-desktop::lib", "sandbox::api::t"), "c")
    assert [(w.binary, w.manifest) for w in picked] == [("lib", str(manifest)), ("api", "")]


class FakeCargo(Cargo):
    """Records calls; the root workspace has sandbox, the desktop manifest fails to load."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[object, ...]] = []

    def metadata(self, manifest: str | None = None) -> Workspace:
        self.calls.append(("metadata", manifest))
        if manifest is not None:
            raise CargoError("`cargo metadata` failed (exit status 101): error: no Cargo.lock")
        sandbox = Package("sandbox", "0.1.0", Path("/w/sandbox"), ("a", "b"), True)
        return Workspace(Path("/w"), Path("/w/target"), {"sandbox": sandbox})

    def build(self, crate: str, binaries: Sequence[tuple[str, str]], features: Sequence[str], *,
              manifest: str | None = None) -> Build:
        self.calls.append(("build", crate, tuple(name for _, name in binaries), manifest))
        return Build(command="cargo test ...")


def test_discovery_asks_metadata_once_per_manifest_and_keeps_failures_apart() -> None:
    desktop = "/w/dioxus-desktop/Cargo.toml"
    wanted = [rustplan.Wanted("sandbox", "a", (), None, "o"),
              rustplan.Wanted("dioxus-desktop", "lib", (), None, "o", desktop),
              rustplan.Wanted("sandbox", "b", (), None, "o"),
              rustplan.Wanted("dioxus-desktop", "dioxus-desktop", (), None, "o", desktop)]
    cargo = FakeCargo()
    plans = discover(wanted, cargo)
    assert cargo.calls == [("metadata", None), ("metadata", desktop),
                           ("build", "sandbox", ("a", "b"), None)]
    problems = [plan.problem.message if plan.problem else "" for plan in plans]
    assert "no Cargo.lock" in problems[1] and "no Cargo.lock" in problems[3]
    assert "does not compile" in problems[0]  # the fake built nothing, but it was asked


def test_plans_survive_the_json_shared_between_workers() -> None:
    plan = rustplan.BinaryPlan("c", "b", ("f",), "o", "b", requested=("t",), listed=("t", "u"),
                               problem=rustplan.Problem("m", "d", harness=True),
                               manifest="/w/c/Cargo.toml", kind="bin", named=("t",),
                               env_set={"CARGO": "/c"}, env_unset=("X",))
    assert rustplan.from_json(rustplan.to_json([plan])) == [plan]


def _result(returncode: int | None, *, timed_out: bool = False, stdout: str = "") -> CommandResult:
    return CommandResult(("bin",), returncode, stdout, "", 1.0, timed_out)


def test_judge_never_passes_a_test_libtest_did_not_report() -> None:
    report = libtest.parse_run("\nrunning 2 tests\ntest a ... ok\n", {"a", "b"})
    verdicts = rustrun.judge(report, _result(0), ["a", "b"], timeout=5)
    assert verdicts["a"].status == rustrun.PASSED
    assert verdicts["b"].status == rustrun.FAILED
    assert "did not report this test" in verdicts["b"].message


def test_judge_attributes_a_timeout_to_the_one_unfinished_test() -> None:
    report = libtest.parse_run("\nrunning 3 tests\ntest a ... ok\ntest c ... ok\n", {"a", "b", "c"})
    verdicts = rustrun.judge(report, _result(-9, timed_out=True), ["a", "b", "c"], timeout=7)
    assert verdicts["b"].message.startswith("b: timed out after 7s")
    assert verdicts["b"].message.endswith("while this test was running")


def test_judge_exit_without_signal_names_the_status() -> None:
    report = libtest.parse_run("\nrunning 2 tests\n", {"a", "b"})
    verdicts = rustrun.judge(report, _result(3), ["a", "b"], timeout=7)
    assert all("stopped with exit status 3" in v.message for v in verdicts.values())
    assert all("running or queued" in v.message for v in verdicts.values())


def test_long_commands_are_shortened_for_the_evidence() -> None:
    argv = ("bin", "--exact", *(f"t{i}" for i in range(500)))
    run = rustrun.BinaryRun(argv, "exit status 0", 0.1)
    assert run.command.endswith("t19 ... (+480 more test names)")


def test_compile_progress_relays_compiling_lines_rate_limited() -> None:
    from choirci.rust.cargo import _compile_progress

    seen: list[str] = []
    relay = _compile_progress(seen.append, every=3600)
    assert relay is not None
    for line in ("   Compiling shared-types v0.1.0 (/ws/shared-types)",
                 "warning: unused variable", "   Compiling sandbox v0.1.0 (/ws/sandbox)",
                 "    Finished `test` profile [unoptimized] target(s) in 1.5s"):
        relay(line)
    assert seen == ["cargo: Compiling shared-types v0.1.0 (/ws/shared-types)",
                    "cargo: Finished `test` profile [unoptimized] target(s) in 1.5s"]
    assert _compile_progress(None) is None


def test_compile_progress_relays_the_first_line_on_a_clock_that_starts_at_zero() -> None:
    """time.monotonic() counts from boot: on a machine up for a second the first line must
    still show (a rate limiter starting at 0.0 dropped it)."""
    from choirci.rust.cargo import _compile_progress

    now = [0.0]
    seen: list[str] = []
    relay = _compile_progress(seen.append, every=2.0, clock=lambda: now[0])
    assert relay is not None
    relay("   Compiling a v0.1.0")
    now[0] = 1.0
    relay("   Compiling b v0.1.0")
    now[0] = 2.5
    relay("   Compiling c v0.1.0")
    assert seen == ["cargo: Compiling a v0.1.0", "cargo: Compiling c v0.1.0"]


def test_compile_progress_names_what_it_builds() -> None:
    from choirci.rust.cargo import _compile_progress

    seen: list[str] = []
    relay = _compile_progress(seen.append, label="sandbox +supervision_refactor")
    assert relay is not None
    relay("    Finished `test` profile [unoptimized] target(s) in 1.5s")
    assert seen == ["cargo (sandbox +supervision_refactor): Finished `test` profile "
                    "[unoptimized] target(s) in 1.5s"]
