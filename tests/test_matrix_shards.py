"""The Actions matrix as a pure function of the config, and the `choirci matrix` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choirci import cli
from choirci.ci import matrix
from choirci.config import parse
from choirci.config.yamlpos import load_yaml
from choirci.errors import ChoirciError

FULL = """\
closures:
  sandbox: ./sandbox#sandbox
  hypervisor: ./hypervisor#hypervisor
loops:
  fmt: cargo fmt --all --check
rust:
  targets:
    - {crate: sandbox, test: desktop_api_test}
hosts:
  grind: local://
"""


def config_from(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "choirci.yaml"
    path.write_text(text)
    return parse(load_yaml(path), root=tmp_path, path=path)


def names(found: tuple[matrix.Shard, ...]) -> list[str]:
    return [shard.name for shard in found]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (FULL, ["closure-sandbox", "closure-hypervisor", "loops", "rust", "hosts"]),
        ("closures:\n  b: ./b#b\n  a: ./a#a\n", ["closure-b", "closure-a"]),  # config order
        ("loops:\n  fmt: cargo fmt --check\n", ["loops"]),
        ("rust:\n  targets: [{crate: c, test: t}]\n", ["rust"]),
        ("hosts:\n  grind: local://\n", ["hosts"]),
        ("hosts:\n  prod: ssh://root@prod\n", []),  # only grind is checked without --hosts
        ("release:\n  prompt_url: http://127.0.0.1:8080\n", ["release"]),
        ("release:\n  domain: os.choir.chat\n", []),
        ("evidence: out\n", []),
    ],
)
def test_one_shard_per_closure_and_per_configured_area(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    found = matrix.shards(config_from(tmp_path, text), areas=("closures", "loops", "rust", "hosts", "release"))
    assert names(found) == expected


def test_shard_args_select_area_and_closure(tmp_path: Path) -> None:
    found = matrix.shards(config_from(tmp_path, FULL), areas=("closures", "rust"))
    args = {shard.name: shard.args for shard in found}
    assert args["closure-sandbox"] == ("--grind", "--area", "closures", "--closure", "sandbox")
    assert args["rust"] == ("--grind", "--area", "rust")


def test_explicit_config_is_passed_on_to_every_shard(tmp_path: Path) -> None:
    found = matrix.shards(config_from(tmp_path, FULL), config_arg="ci/choirci.yaml")
    for shard in found:
        argv = shard.to_json([])["args"].split()
        assert argv[:3] == ["--grind", "--choirci-config", "ci/choirci.yaml"]


def test_config_path_that_needs_quoting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ChoirciError, match=r"^--choirci-config 'my ci.yaml': a path with spaces"):
        matrix.shards(config_from(tmp_path, FULL), config_arg="my ci.yaml")


def test_every_area_names_a_collecting_module_and_the_matrix_follows_their_order(
        tmp_path: Path) -> None:
    """choirci.areas is the one list: each entry's module collects it, and the matrix shards
    areas in that order (an unconfigured area gets no shard: see the has_items rules)."""
    import importlib

    from choirci import areas

    for area in areas.AREAS:
        assert callable(importlib.import_module(area.module).collect_area), area.module
    order = [shard.area for shard in matrix.shards(config_from(tmp_path, FULL))]
    assert order == sorted(order, key=areas.NAMES.index)


def test_matrix_json_is_deterministic_and_lists_expected_shards(tmp_path: Path) -> None:
    cfg = config_from(tmp_path, FULL)
    first = matrix.render(matrix.matrix(matrix.shards(cfg)))
    again = matrix.render(matrix.matrix(matrix.shards(config_from(tmp_path, FULL))))
    assert first == again
    include = json.loads(first)["include"]
    expected = ",".join(entry["shard"] for entry in include)
    assert all(entry["expected_shards"] == expected for entry in include)


def test_github_output_is_appended_one_line_per_key(tmp_path: Path) -> None:
    out = tmp_path / "gh_output"
    out.write_text("earlier=kept\n")
    found = matrix.shards(config_from(tmp_path, FULL), areas=("closures",))
    matrix.write_github_output(out, found)
    lines = out.read_text().splitlines()
    assert lines[0] == "earlier=kept"
    assert lines[2:] == ["shards=closure-sandbox,closure-hypervisor", "count=2"]
    key, _, value = lines[1].partition("=")
    assert key == "matrix" and json.loads(value)["include"][1]["shard"] == "closure-hypervisor"


def test_command_prints_matrix_and_writes_github_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "choirci.yaml").write_text(FULL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "out"))
    assert cli.main(["matrix"]) == 0
    printed = json.loads(capsys.readouterr().out)
    written = (tmp_path / "out").read_text().splitlines()[0].removeprefix("matrix=")
    assert json.loads(written) == printed
    assert [e["shard"] for e in printed["include"]][:2] == ["closure-sandbox", "closure-hypervisor"]


def test_command_refuses_an_empty_matrix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "choirci.yaml").write_text("evidence: out\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    assert cli.main(["matrix"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("choirci: error: ") and "no shards" in err and "\n" not in err


@pytest.mark.parametrize("flag", ["--choirci-config", "--config"])
def test_command_takes_the_config_under_both_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    flag: str,
) -> None:
    """`--choirci-config` as the errors, pytest and `choirci gate` say; `--config` as before."""
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "choirci.yaml").write_text(FULL)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    assert cli.main(["matrix", flag, "ci/choirci.yaml"]) == 0
    include = json.loads(capsys.readouterr().out)["include"]
    assert all(e["args"].startswith("--grind --choirci-config ci/choirci.yaml ") for e in include)


def test_command_with_missing_config_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["matrix", "--config", "nope.yaml"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "choirci: error: nope.yaml: no such config file; pass an existing choirci.yaml"


def test_unwritable_github_output_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "choirci.yaml").write_text(FULL)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["matrix", "--github-output", str(tmp_path / "no" / "dir")]) == 2
    assert "cannot write $GITHUB_OUTPUT" in capsys.readouterr().err
