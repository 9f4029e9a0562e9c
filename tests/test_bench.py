"""The benches (bench/) keep running, and the README shows exactly what they measured.

Figures are not asserted (a test is not a benchmark): the tiny configuration only proves that
every bench builds what it measures, runs choirci and the raw anchor, and reports rows.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import common  # noqa: E402
import runner  # noqa: E402


def test_readme_benchmark_table_is_generated_from_the_committed_results() -> None:
    results = json.loads((REPO / "bench" / "results.json").read_text())
    assert not results["tiny"], "bench/results.json must come from a full `./bench/run`"
    assert runner.readme_block(results) in (REPO / "README.md").read_text()
    assert {row["bench"] for row in results["rows"]} == set(runner.BENCHES)


def test_a_bench_that_measures_a_failing_run_says_so_and_exits_non_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(_args: object) -> list[common.Row]:
        common.checked([sys.executable, "-c", "import sys; sys.exit(3)"], "the raw command")
        return []

    args = common.parser(None).parse_args(["--json", str(tmp_path / "rows.json")])
    assert common.main(run, args) == 1
    assert "bench: FAILED: the raw command failed (exit 3)" in capsys.readouterr().err
    assert not (tmp_path / "rows.json").exists()


@pytest.mark.slow
def test_every_bench_runs_in_its_tiny_configuration(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "runner.py"), "--tiny",
                             "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                            timeout=900, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["tiny"] and results["machine"]["cores"]
    by_bench = {row["bench"] for row in results["rows"]}
    assert by_bench == set(runner.BENCHES)
    for row in results["rows"]:
        assert row["choirci"] > 0, row
