"""CI parity: the pure comparison, the normalisations, and `choirci parity` on records."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from choirci import cli
from choirci.ci import parity
from choirci.evidence import record as results
from choirci.evidence.record import ItemResult, Provenance, RunRecord, ShardRun

BATCH = "nix build --json --keep-going ./sandbox#sandbox ./hypervisor#hypervisor"


def item(nodeid: str, command: str | None, outcome: str = "passed", **props: str) -> ItemResult:
    """An item whose command is recorded as the areas do: ``rust.command`` for Rust tests,
    ``command`` for closures and loops."""
    key = "rust.command" if nodeid.startswith("rust::") else "command"
    properties = tuple(props.items()) + (((key, command),) if command is not None else ())
    area = nodeid.split("::", 1)[0]
    return ItemResult(nodeid=nodeid, area=area, classname=area, name=nodeid, outcome=outcome,
                      properties=properties)


def run(shard: str, *items: ItemResult, root: str = "/opt/ws",
        expected: tuple[str, ...] = ()) -> ShardRun:
    return ShardRun(shard=shard, status="complete", finished="2026-01-01T00:00:00Z",
                    expected_shards=expected, provenance=Provenance(root=root), items=items)


def grind_record() -> RunRecord:
    return RunRecord(runs=(run(
        "",
        item("closures::sandbox", BATCH, installable="./sandbox#sandbox"),
        item("closures::hypervisor", BATCH, installable="./hypervisor#hypervisor"),
        item("loops::fmt", "cargo fmt --all --check"),
        item("rust::sandbox::api::t", "/opt/ws/target/debug/deps/api-1a --exact t"),
    ),))


def actions_record(**changes: str) -> RunRecord:
    """The same items as grind_record, sharded as `choirci matrix` shards them, run from
    another checkout path. ``changes`` maps a node id to a different command."""
    root = "/home/runner/work/ws/ws"
    names = ("closure-sandbox", "closure-hypervisor", "loops", "rust")
    commands = {
        "closures::sandbox": "nix build --json --keep-going ./sandbox#sandbox",
        "closures::hypervisor": "nix build --json --keep-going ./hypervisor#hypervisor",
        "loops::fmt": "cargo fmt --all --check",
        "rust::sandbox::api::t": f"{root}/target/debug/deps/api-1a --exact t",
    } | changes
    installables = {"closures::sandbox": "./sandbox#sandbox",
                    "closures::hypervisor": "./hypervisor#hypervisor"}

    def one(nodeid: str) -> ItemResult:
        extra = {"installable": installables[nodeid]} if nodeid in installables else {}
        return item(nodeid, commands[nodeid], **extra)

    shards = [
        run(names[0], one("closures::sandbox"), root=root, expected=names),
        run(names[1], one("closures::hypervisor"), root=root, expected=names),
        run(names[2], one("loops::fmt"), root=root, expected=names),
        run(names[3], one("rust::sandbox::api::t"), root=root, expected=names),
    ]
    return results.merge([RunRecord(runs=(shard,)) for shard in shards])


def test_sharded_run_from_another_checkout_is_at_parity() -> None:
    found = parity.compare_records(grind_record(), actions_record())
    assert found.ok, parity.render(found)
    assert (found.grind_count, found.actions_count) == (4, 4)
    assert parity.render(found).startswith("parity: same items, same commands")


def test_a_changed_flag_is_a_command_difference() -> None:
    found = parity.compare_records(grind_record(), actions_record(**{"loops::fmt": "cargo fmt"}))
    assert not found.ok
    assert found.commands == (parity.CommandDiff("loops::fmt", "command",
                                                 "cargo fmt --all --check", "cargo fmt"),)
    assert "command differs: loops::fmt (command)" in parity.render(found)


def test_another_binary_hash_is_a_difference_even_under_the_root() -> None:
    changed = {"rust::sandbox::api::t": "/home/runner/work/ws/ws/target/debug/deps/api-2b --exact t"}
    found = parity.compare_records(grind_record(), actions_record(**changed))
    assert [(d.nodeid, d.name) for d in found.commands] == [("rust::sandbox::api::t", "rust.command")]
    assert found.commands[0].grind == "<root>/target/debug/deps/api-1a --exact t"


def test_every_command_property_is_compared() -> None:
    """Rust items record the build and the run; a different build command is a difference."""
    def record(build: str) -> RunRecord:
        rust = item("rust::c::b::t", "<bin> --exact t", **{"rust.build_command": build})
        return RunRecord(runs=(run("", rust),))

    found = parity.compare_records(record("cargo test --no-run -p c"),
                                   record("cargo test --no-run -p c --release"))
    assert [(d.nodeid, d.name) for d in found.commands] == [("rust::c::b::t", "rust.build_command")]
    assert parity.compare_records(record("cargo test --no-run -p c"),
                                  record("cargo test --no-run -p c")).ok


def test_a_closure_built_with_other_options_differs_despite_unbatching() -> None:
    changed = {"closures::sandbox": "nix build --json --impure ./sandbox#sandbox"}
    found = parity.compare_records(grind_record(), actions_record(**changed))
    assert [d.nodeid for d in found.commands] == ["closures::sandbox"]


def test_missing_and_extra_items_are_listed() -> None:
    grind = grind_record()
    actions = actions_record()
    extra = run("extra", item("loops::clippy", "cargo clippy"), expected=())
    actions = RunRecord(runs=tuple(r for r in actions.runs if r.shard != "rust") + (extra,))
    found = parity.compare_records(grind, actions)
    assert found.only_grind == ("rust::sandbox::api::t",)
    assert found.only_actions == ("loops::clippy",)
    # The rust shard was expected and is gone: incomplete Actions evidence is a problem too.
    assert found.problems == ("actions evidence: shard 'rust' is missing",)
    text = parity.render(found)
    assert "only on grind: rust::sandbox::api::t" in text
    assert "only in actions: loops::clippy" in text


def test_an_item_run_by_two_shards_is_a_duplicate() -> None:
    doubled = run("again", item("loops::fmt", "cargo fmt --all --check"))
    actions = RunRecord(runs=actions_record().runs + (doubled,))
    found = parity.compare_records(grind_record(), actions)
    assert found.duplicates == ("actions: loops::fmt ran 2 times",)
    assert not found.ok


def test_outcome_differences_are_notes_not_differences() -> None:
    grind = grind_record()
    failing = RunRecord(runs=tuple(
        results.with_items(r, tuple(
            replace(i, outcome="failed") if i.nodeid == "loops::fmt" else i
            for i in r.items))
        for r in actions_record().runs
    ))
    found = parity.compare_records(grind, failing)
    assert found.ok
    assert found.outcome_notes == ("loops::fmt: passed on grind, failed in actions",)


def test_deselected_items_did_not_run() -> None:
    grind = RunRecord(runs=(run("", item("loops::fmt", "x"), item("loops::b", None, "deselected")),))
    actions = RunRecord(runs=(run("", item("loops::fmt", "x")),))
    assert parity.compare_records(grind, actions).ok


def test_a_missing_command_on_one_side_differs() -> None:
    grind = RunRecord(runs=(run("", item("loops::fmt", None)),))
    actions = RunRecord(runs=(run("", item("loops::fmt", "cargo fmt")),))
    found = parity.compare_records(grind, actions)
    assert found.commands == (parity.CommandDiff("loops::fmt", "command", None, "cargo fmt"),)
    assert "(no command recorded)" in parity.render(found)


# --------------------------------------------------------------------------- the command


def write(path: Path, record: RunRecord) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "choirci.json").write_text(json.dumps(results.to_json(record)))
    return path


def test_command_exit_status_follows_parity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grind = write(tmp_path / "grind", grind_record())
    same = write(tmp_path / "same", actions_record())
    other = write(tmp_path / "other", actions_record(**{"loops::fmt": "cargo fmt"}))
    assert cli.main(["parity", str(grind), str(same / "choirci.json")]) == 0
    assert "same items, same commands" in capsys.readouterr().out
    assert cli.main(["parity", str(grind), str(other)]) == 1
    assert "command differs: loops::fmt" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no run record here"),
        ("{not json", "unreadable run record"),
        ('{"schema": "other"}', 'not a choirci run record'),
    ],
)
def test_unreadable_evidence_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    if content is not None:
        (bad / "choirci.json").write_text(content)
    grind = write(tmp_path / "grind", grind_record())
    assert cli.main(["parity", str(grind), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("choirci: error: ") and message in err and "\n" not in err


def with_commit(record: RunRecord, commit: str | None) -> RunRecord:
    return RunRecord(runs=tuple(replace(r, provenance=replace(r.provenance, commit=commit))
                                for r in record.runs))


A, B = "1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a", "2bc0ffee2533ccdb07c504301e4e55bd5781ff2a"


@pytest.mark.parametrize(
    ("grind", "actions", "ok"),
    [
        (A, A, True),
        (A, B, False),
        (A, None, False),
        (A, (A, B), False),  # the Actions shards themselves disagree
    ],
    ids=["same", "other-commit", "unknown-commit", "mixed-shards"],
)
def test_runs_of_different_commits_are_not_at_parity(
    grind: str | None, actions: str | tuple[str, str] | None, ok: bool
) -> None:
    left = with_commit(grind_record(), grind)
    if isinstance(actions, tuple):
        right = actions_record()
        right = RunRecord(runs=tuple(replace(r, provenance=replace(r.provenance, commit=c))
                                     for r, c in zip(right.runs, [*actions, *actions],
                                                     strict=True)))
    else:
        right = with_commit(actions_record(), actions)
    found = parity.compare_records(left, right)
    assert found.ok == ok, parity.render(found)
    if not ok:
        assert "commit differs: grind tested" in parity.render(found)


def test_command_exits_1_on_a_commit_difference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grind = write(tmp_path / "grind", with_commit(grind_record(), A))
    actions = write(tmp_path / "actions", with_commit(actions_record(), B))
    assert cli.main(["parity", str(grind), str(actions)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("parity: DIFFERENT")
    assert f"commit differs: grind tested {A}; actions tested {B}" in out
