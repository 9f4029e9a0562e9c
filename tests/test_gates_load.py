"""Gate definitions: the bundled YAML keeps the checklist wording and loads; a bad file gets
file, line and the fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from evidence_sample import GOLDEN

from choirci.errors import ConfigError
from choirci.gates import definitions as gates

SEED = GOLDEN / "seed-bootstrap-checklists.md"
PHASES = {"phase-1": "Phase 1 Issue", "phase-2": "Phase 2 Issue", "phase-3": "Phase 3 Issue",
          "phase-4": "Phase 4 Issue", "phase-5": "Phase 5 Issue",
          "definition-of-done": "Global Definition of Done"}


def seed_items(heading: str) -> list[str]:
    """The '- [ ] ...' lines of one '## <heading>' block of the seed checklists."""
    text = SEED.read_text()
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 3)
    block = text[start: end if end != -1 else None]
    return re.findall(r"^- \[ \] (.+?)\s*$", block, flags=re.MULTILINE)


def test_all_bundled_gates_load_in_phase_order() -> None:
    loaded = {gate.id: gate for gate in gates.load_all()}
    assert set(loaded) == {*PHASES, "release"}
    assert [loaded[f"phase-{n}"].after for n in range(1, 6)] == [
        None, "phase-1", "phase-2", "phase-3", "phase-4"]


@pytest.mark.parametrize("gate_id", sorted(PHASES))
def test_checklist_wording_is_kept(gate_id: str) -> None:
    gate = gates.load(gate_id)
    assert [item.text for item in gate.items] == seed_items(PHASES[gate_id])


def test_release_checklist_line_has_the_four_facts() -> None:
    texts = [item.text for item in gates.load("release").items]
    assert texts[:4] == ["grind commit SHA", "promoted SHA", "domain tested",
                         "prompt execution result"]


def write(tmp_path: Path, body: str, name: str = "phase-9") -> Path:
    (tmp_path / f"{name}.yaml").write_text(body)
    return tmp_path


GOOD = """\
id: phase-9
title: Phase 9
sections:
  - title: Gate
    items:
      - text: "Sandbox builds."
        require:
          - closure: sandbox
"""


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("closure: sandbox", "closur: sandbox"),
         r"phase-9.yaml:8: sections\[0\].items\[0\].require\[0\].closur: unknown key "
         r"\(did you mean 'closure'\?\)"),
        (GOOD.replace("closure: sandbox", "marker: nixx"),
         r"phase-9.yaml:8: .*marker: unknown marker 'nixx'; use one of nix, rust, host, loop"),
        (GOOD.replace("        require:\n          - closure: sandbox\n", ""),
         r"phase-9.yaml:6: sections\[0\].items\[0\]: a required item needs 'require:' "
         r"selectors or 'manual:' evidence files"),
        (GOOD.replace("id: phase-9", "id: phase-8"),
         r"phase-9.yaml:1: id: is 'phase-8' but the file is phase-9.yaml; make them equal"),
        (GOOD.replace("closure: sandbox", "release: prompts"),
         r"phase-9.yaml:8: .*release: unknown release fact 'prompts'; use one of grind_sha"),
        (GOOD + "        manual: /etc/passwd\n",
         r"phase-9.yaml:9: .*manual: '/etc/passwd' must be a path inside the evidence dir"),
        (GOOD.replace("  - title: Gate\n", "  - title: Gate\n    required: false\n"),
         r"phase-9.yaml:3: sections: no required item"),
        ("id: [phase-9\n", r"phase-9.yaml:2: malformed YAML"),
    ],
)
def test_bad_gate_file_names_file_line_and_fix(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        gates.load("phase-9", write(tmp_path, body))
    message = str(info.value)
    assert "\n" not in message
    assert re.search(expected, message), message


def test_unknown_gate_suggests_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no gate 'phase2' .*did you mean 'phase-2'\?"):
        gates.load("phase2")


def test_good_file_loads(tmp_path: Path) -> None:
    gate = gates.load("phase-9", write(tmp_path, GOOD))
    assert gate.items[0].require[0].match == (("closure", "sandbox"),)


def test_an_edited_gate_file_is_read_again(tmp_path: Path) -> None:
    """Parsed gates are kept per content (a run evaluates them at start and end): an edit
    between two loads in one process is seen, and a broken edit still fails."""
    directory = write(tmp_path, GOOD)
    assert gates.load("phase-9", directory).items[0].require[0].match == (("closure", "sandbox"),)
    write(tmp_path, GOOD.replace("closure: sandbox", "closure: hypervisor"))
    again = gates.load("phase-9", directory)
    assert again.items[0].require[0].match == (("closure", "hypervisor"),)
    assert again.digest != gates.load("phase-9", write(tmp_path, GOOD)).digest
    write(tmp_path, GOOD.replace("title: Phase 9", "title: ''"))
    with pytest.raises(ConfigError, match="title: expected a non-empty string"):
        gates.load("phase-9", directory)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("        require:\n          - closure: sandbox\n", "        require: []\n"),
         r"require: expected a non-empty list, got an empty list$"),
        (GOOD.replace("    items:\n", "    items: []\n").split("      - text")[0],
         r"items: expected a non-empty list, got an empty list$"),
        (GOOD.replace("title: Phase 9", "title: ''"), r"title: expected a non-empty string, "
         r"got an empty string$"),
        (GOOD.replace("title: Phase 9", "title: '   '"), r"got only whitespace$"),
        (GOOD + "            where: []\n", r"where: expected a mapping, got an empty list$"),
    ],
)
def test_schema_errors_say_what_is_wrong(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        gates.load("phase-9", write(tmp_path, body))
    assert re.search(expected, str(info.value)), str(info.value)


@pytest.mark.parametrize("load", [lambda d: gates.load("phase-2", d), gates.load_all])
def test_a_gates_dir_that_is_not_there_is_named(tmp_path: Path, load: object) -> None:
    missing = tmp_path / "checks" / "gatez"
    with pytest.raises(ConfigError) as info:
        load(missing)  # type: ignore[operator]
    assert str(info.value).startswith(f"gates dir {missing} does not exist")
    assert "known gates" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (GOOD.replace("title: Phase 9", "title: Phase 9\ndirty_tree: yes-please"),
         r"phase-9.yaml:3: dirty_tree: expected 'allowed' or 'refused'"),
        (GOOD.replace("title: Phase 9", "title: Phase 9\nuser_tests: 'sure'"),
         r"phase-9.yaml:3: user_tests: expected true or false"),
        (GOOD.replace("closure: sandbox", "run: fail"), r"run: expected 'pass', got 'fail'"),
        (GOOD.replace("closure: sandbox", "param: hypervisor"),
         r"param: 'param' narrows a 'check:'; name the check too"),
        (GOOD.replace("closure: sandbox", "check: test_units.py::test_unit_activ"),
         r"test_units.py has no check test_unit_activ; did you mean 'test_unit_active'\?"),
        (GOOD + "        missing_check: ''\n", r"missing_check: expected a non-empty string"),
        (GOOD.replace("closure: sandbox", "tree: clean"),
         r"sections: no required item reads the run's own results"),
        (GOOD.replace("closure: sandbox", "release: domain"),
         r"sections: no required item reads the run's own results"),
    ],
)
def test_trust_keys_are_validated(tmp_path: Path, body: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        gates.load("phase-9", write(tmp_path, body))
    assert "\n" not in str(info.value)
    assert re.search(expected, str(info.value)), str(info.value)


def test_bundled_gates_are_bundled_and_a_copy_is_custom(tmp_path: Path) -> None:
    bundled = gates.load("phase-1")
    assert not bundled.custom and len(bundled.digest) == 64 and bundled.dir_digest == ""
    (tmp_path / "phase-1.yaml").write_bytes((gates.default_dir() / "phase-1.yaml").read_bytes())
    copy = gates.load("phase-1", tmp_path)
    assert copy.custom and copy.digest == bundled.digest
    assert copy.dir_digest == gates.digest_dir(tmp_path)
