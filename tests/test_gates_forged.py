"""Forged and malformed evidence: typed loading with one-line errors (hypothesis over
mutated records), redaction that never rewrites structural fields."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from evidence_sample import closure, run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.errors import ChoirciError
from choirci.evidence import files as evidence
from choirci.evidence.files import from_json
from choirci.evidence.record import RunRecord, merge, run_verdict, to_json
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


def good_json() -> dict[str, Any]:
    items = tuple(closure(n, cache="substituted") for n in ("sandbox", "desktop", "hypervisor"))
    return to_json(RunRecord(runs=(run(items=items),)))


def write_record(directory: Path, data: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "choirci.json").write_text(json.dumps(data))
    return directory


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("runs", 0, "items", 0, "nodeid"), 5, "runs[0].items[0].nodeid: expected a string, got 5"),
    (("runs", 0, "items", 0, "nodeid"), None, "runs[0].items[0].nodeid: expected a string"),
    (("runs", 0, "provenance", "commit"), 1234, "runs[0].provenance.commit: expected a string or null"),
    (("runs", 0, "finished"), 17, "runs[0].finished: expected a string or null, got 17"),
    (("runs", 0, "items", 0, "outcome"), "PASSED", "outcome: expected one of passed"),
    (("runs", 0, "items", 0, "markers"), "nix", "markers: expected a list"),
    (("runs", 0, "items", 0, "duration"), "fast", "duration: expected a number"),
    (("runs", 0, "status"), True, "runs[0].status: expected one of complete, incomplete"),
    (("runs", 0, "items", 0, "properties"), [["cache"]], "properties[0]: expected a [name, value]"),
    (("runs",), {"a": 1}, "runs: expected a list"),
])
def test_a_mistyped_field_is_one_line_and_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: tuple[Any, ...], value: Any,
    expected: str,
) -> None:
    data = good_json()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    directory = write_record(tmp_path / "ev", data)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected in err and err.startswith("choirci: error: ")


def test_finished_as_an_int_in_two_runs_of_one_shard_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dirs = []
    for index, finished in enumerate((5, "2026-02-22T10:00:00Z")):
        data = to_json(RunRecord(runs=(run(shard="sandbox", expected=("sandbox",),
                                           items=(closure("sandbox"),)),)))
        data["runs"][0]["finished"] = finished
        dirs.append(str(write_record(tmp_path / f"s{index}", data)))
    assert main(["evidence", "merge", *dirs, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "finished: expected a string or null, got 5" in err


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=6,
)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


BASE = good_json()
PATHS = _paths(BASE)


def forged(edits: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    """BASE with each edit applied (value at path); an edit whose parent an earlier edit
    replaced is skipped."""
    data = copy.deepcopy(BASE)
    for path, value in edits:
        target: Any = data
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    return data


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=4))
def test_a_forged_record_loads_or_is_one_line_never_a_traceback(
    edits: list[tuple[tuple[Any, ...], Any]]
) -> None:
    data = forged(edits)
    try:
        record = from_json(data, "forged.json")
    except ChoirciError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("forged.json: ")
        return
    # What loads is well typed: every later step works on it.
    for gate in gates.load_all():
        verdicts.evaluate(gate, record)
    run_verdict(record)
    merge([record, record])
    assert from_json(to_json(record)) == record


@pytest.mark.parametrize("secret", ["passed", "complete", "closures", "nix", "2026-02-22"])
def test_redaction_never_rewrites_structural_fields(secret: str) -> None:
    record = RunRecord(runs=(run(items=(closure("sandbox"),)),))
    clean = evidence.redacted(record, Redactor.from_env({"DEPLOY_TOKEN": secret}))
    item = clean.runs[0].items[0]
    assert (item.outcome, item.area, item.markers, clean.runs[0].status) == (
        "passed", "closures", ("nix",), "complete")
    assert clean.runs[0].started == record.runs[0].started


@pytest.mark.parametrize("token", ["passed", "pass", "fail", "complete", "clean"])
def test_a_token_equal_to_an_outcome_keeps_the_record_and_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    token: str,
) -> None:
    items = tuple(closure(n, cache="substituted") for n in ("sandbox", "desktop", "hypervisor"))
    record = RunRecord(runs=(run(items=items),))
    monkeypatch.setenv("DEPLOY_TOKEN", token)
    directory = tmp_path / "ev"
    evidence.write_all(record, directory, Redactor.from_env())
    data = json.loads((directory / "choirci.json").read_text())
    assert {i["outcome"] for i in data["runs"][0]["items"]} == {"passed"}
    assert main(["gate", "phase-1", "--evidence", str(directory)]) in (0, 1)
    assert "Traceback" not in capsys.readouterr().err
    verdict = json.loads((directory / "gates" / "phase-1.json").read_text())
    assert (verdict["verdict"], verdict["tree"], verdict["status"]) == ("fail", "clean", "complete")


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(PATHS), JSON), min_size=1, max_size=3))
def test_choirci_gate_on_a_forged_record_never_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edits: list[tuple[tuple[Any, ...], Any]]
) -> None:
    data = forged(edits)
    directory = write_record(tmp_path / "forged", data)
    code = main(["gate", "phase-1", "--evidence", str(directory)])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    # No junit.xml beside it: never a pass; bad input is one line.
    assert code in (1, 2, 3)
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("choirci: error: ")
