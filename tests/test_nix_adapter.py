"""The Nix adapter's command lines and error handling, against a hand-written fake ``nix``.

The fake is a shell script in tmp_path (``nix.binary`` points at it): it records its argv
and answers from files, so these tests pin exactly what choirci runs without real builds.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from choirci.errors import ToolMissing
from choirci.nix.adapter import EXPERIMENTAL, Nix, NixError, tail

FAKE = """#!/bin/sh
printf '%s\\n' "$*" >> "{log}"
sub="$3"
[ "$1" = "--version" ] && {{ cat "{dir}/version"; exit 0; }}
[ -f "{dir}/$sub.err" ] && cat "{dir}/$sub.err" >&2
[ -f "{dir}/$sub.out" ] && cat "{dir}/$sub.out"
exit $(cat "{dir}/$sub.rc" 2>/dev/null || echo 0)
"""


class FakeNix:
    def __init__(self, root: Path, version: str = "nix (Nix) 2.8.0") -> None:
        self.dir = root
        self.log = root / "argv.log"
        self.binary = root / "nix"
        self.binary.write_text(FAKE.format(log=self.log, dir=root))
        self.binary.chmod(0o755)
        (root / "version").write_text(version + "\n")

    def answer(self, sub: str, out: str = "", err: str = "", rc: int = 0) -> None:
        (self.dir / f"{sub}.out").write_text(out)
        (self.dir / f"{sub}.err").write_text(err)
        (self.dir / f"{sub}.rc").write_text(str(rc))

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def fake(tmp_path: Path) -> FakeNix:
    return FakeNix(tmp_path)


def nix_for(fake: FakeNix, **kwargs: object) -> Nix:
    return Nix(binary=str(fake.binary), cwd=fake.dir, **kwargs)  # type: ignore[arg-type]


def test_version_is_read_once(fake: FakeNix) -> None:
    nix = nix_for(fake)
    assert str(nix.version()) == "2.8.0"
    assert str(nix.version()) == "2.8.0"
    assert fake.calls() == ["--version"]


def test_build_argv_is_ci_shaped_and_extra_args_follow_the_subcommand(fake: FakeNix) -> None:
    nix = nix_for(fake, extra_args=("--builders", "ssh-ng://builder x86_64-linux"))
    argv = nix.build_argv(["./sandbox#sandbox", "./hypervisor#hypervisor"])
    assert argv == [str(fake.binary), *EXPERIMENTAL, "build", "--builders",
                    "ssh-ng://builder x86_64-linux", "--log-format", "bar-with-logs", "--json", "--no-link",
                    "--keep-going",
                    "--print-build-logs", "./sandbox#sandbox", "./hypervisor#hypervisor"]
    dry = nix.build_argv(["./sandbox#sandbox"], dry_run=True)
    assert "--dry-run" in dry and "--keep-going" not in dry


def test_develop_argv(fake: FakeNix) -> None:
    argv = nix_for(fake).develop_argv("./sandbox", ["cargo", "check", "-p", "sandbox"])
    assert shlex.join(argv[1:]) == ("--extra-experimental-features 'nix-command flakes' develop "
                                    "./sandbox --command cargo check -p sandbox")


def test_failed_build_is_a_result_not_an_exception(fake: FakeNix) -> None:
    fake.answer("build", out="", err="error: builder for '/nix/store/x.drv' failed\n", rc=1)
    result, built = nix_for(fake).build(["./a#a"])
    assert not result.ok and built == []
    assert "failed" in result.stderr


def test_path_info_maps_every_asked_path(fake: FakeNix) -> None:
    valid = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
    missing = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
    fake.answer("path-info", out=json.dumps([
        {"path": valid, "narHash": "sha256-x", "narSize": 8, "ultimate": True},
        {"path": missing, "valid": False},
    ]))
    info = nix_for(fake).path_info([valid, missing], closure_size=True)
    assert info[missing] is None
    assert info[valid] is not None and info[valid].ultimate
    assert "--closure-size" in fake.calls()[-1]
    assert nix_for(fake).path_info([]) == {}


def test_path_info_failure_is_one_line(fake: FakeNix) -> None:
    fake.answer("path-info", err="warning: x\nerror: cannot open database\n", rc=1)
    with pytest.raises(NixError) as info:
        nix_for(fake).path_info(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"])
    assert "\n" not in str(info.value)
    assert str(info.value).endswith("error: cannot open database")


def test_garbage_json_is_a_clear_error(fake: FakeNix) -> None:
    fake.answer("path-info", out="<html>")
    with pytest.raises(NixError, match=r"not JSON .* \(from `"):
        nix_for(fake).path_info(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"])


def test_log_tail_absent_and_bounded(fake: FakeNix) -> None:
    fake.answer("log", err="error: build log of '/nix/store/x.drv' is not available\n", rc=1)
    assert nix_for(fake).log_tail("/nix/store/x.drv") is None
    fake.answer("log", out="".join(f"line {i} {'x' * 300}\n" for i in range(500)))
    text = nix_for(fake).log_tail("/nix/store/x.drv")
    assert text is not None and text.endswith("line 499 " + "x" * 300)
    assert len(text.encode()) <= 8 * 1024 + 5


@pytest.mark.parametrize("version", ["nix (Nix) 2.8.0", "nix (Nix) 2.24.1"])
def test_drv_closure_probes_the_subcommand_whatever_the_version_says(tmp_path: Path,
                                                                     version: str) -> None:
    """``derivation show`` is tried, and ``show-derivation`` used only when Nix says the
    subcommand does not exist; the version string decides nothing."""
    drv = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv"
    dep = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b.drv"
    (tmp_path / "new").mkdir()
    new = FakeNix(tmp_path / "new", version)
    new.answer("derivation", out=json.dumps({drv: {}, dep: {}}))
    nix = nix_for(new)
    assert nix.drv_closure(drv) == {drv, dep} and nix.drv_closure(dep) == {drv, dep}
    assert [c.split()[3:5] for c in new.calls()] == [["derivation", "show"]] * 2
    assert nix.features().derivation_show

    (tmp_path / "old").mkdir()
    old = FakeNix(tmp_path / "old", version)
    old.answer("derivation", err="error: 'derivation' is not a recognised command\n"
               "Try 'nix --help' for more information.\n", rc=1)
    old.answer("show-derivation", out=json.dumps({drv: {}, dep: {}}))
    nix = nix_for(old)
    assert nix.drv_closure(drv) == {drv, dep} and nix.drv_closure(dep) == {drv, dep}
    assert [c.split()[3] for c in old.calls()] == ["derivation", "show-derivation",
                                                   "show-derivation"]
    assert not nix.features().derivation_show


def test_drv_closure_failure_is_not_a_negative_probe(fake: FakeNix) -> None:
    fake.answer("derivation", err="error: path '/nix/store/x.drv' is not valid\n", rc=1)
    nix = nix_for(fake)
    assert nix.drv_closure("/nix/store/x.drv") == {"/nix/store/x.drv"}
    assert nix.features().derivation_show
    assert all("show-derivation" not in call for call in fake.calls())


def test_extra_args_go_on_every_call_after_the_whole_subcommand(fake: FakeNix) -> None:
    """``--store`` in nix.extra_args must reach queries, deletes and verifies too, or their
    answers silently come from another store."""
    fake.answer("path-info", out="[]")
    nix = nix_for(fake, extra_args=("--store", "/tmp/other store"))
    drv, out = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a.drv", "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
    nix.build([".#a"])
    nix.dry_run([".#a"])
    nix.path_info([out])
    nix.drv_closure(drv)
    nix.log_tail(drv)
    nix.copy([out], to="file:///tmp/cache")
    nix.delete([out])
    nix.verify([out])
    nix.diff_closures(out, out)
    calls = fake.calls()
    subcommands = ["build", "build", "path-info", "derivation show", "log", "copy",
                   "store delete", "store verify", "store diff-closures"]
    assert len(calls) == len(subcommands)
    for call, sub in zip(calls, subcommands, strict=True):
        assert call.startswith(f"--extra-experimental-features nix-command flakes {sub} "
                               "--store /tmp/other store "), call
    assert shlex.join(nix.develop_argv("./sandbox", ["true"])[3:6]) == \
        "develop --store '/tmp/other store'"


def test_the_log_format_choirci_parses_is_pinned_after_the_users(fake: FakeNix) -> None:
    nix = nix_for(fake, extra_args=("--log-format", "internal-json", "-v"))
    for argv in (nix.build_argv([".#a"]), nix.build_argv([".#a"], dry_run=True)):
        users = argv.index("internal-json")
        ours = len(argv) - 1 - argv[::-1].index("--log-format")
        assert ours > users and argv[ours + 1] == "bar-with-logs"


def test_missing_binary(tmp_path: Path) -> None:
    nix = Nix(binary=str(tmp_path / "no-nix"))
    assert not nix.available()
    with pytest.raises(ToolMissing, match="nix.binary"):
        nix.version()


@pytest.mark.parametrize(
    ("text", "lines", "limit", "expected"),
    [
        ("a\nb\nc\n", 2, 100, "b\nc"),
        ("a\nb\nc", 10, 100, "a\nb\nc"),
        ("x" * 50, 10, 10, "[...]" + "x" * 10),
        ("", 5, 10, ""),
    ],
)
def test_tail(text: str, lines: int, limit: int, expected: str) -> None:
    assert tail(text, lines, limit) == expected
