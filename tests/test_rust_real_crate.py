"""A real crate nobody here wrote: Debian's packaged aho-corasick (with its dependency memchr,
from `librust-aho-corasick-dev`, installed by scripts/setup.sh), built offline through a
source replacement in the scratch copy's own .cargo/config.toml. choirci's per-test outcomes
equal raw `cargo test`'s, name for name: unit tests (including #[should_panic]), doc tests
and ignored doc tests, with ignored tests skipped and with them included."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from rust_support import cargo_env, debian_crate, outcomes

pytestmark = pytest.mark.slow

RESULT = re.compile(r"^test (?P<name>.+?)(?P<sp> - should panic)? \.\.\. "
                    r"(?P<status>ok|FAILED|ignored)(?:, .*)?$")
STATUS = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = debian_crate("aho-corasick-0.7.*", tmp_path_factory.mktemp("real") / "aho-corasick")
    if dest is None:
        pytest.skip("librust-aho-corasick-dev is not installed (scripts/setup.sh installs it)")
    (dest / "choirci.yaml").write_text(
        "rust:\n  targets:\n    - {crate: aho-corasick, kind: lib}\n"
        "    - {crate: aho-corasick, kind: doc}\n")
    return dest


def raw_cargo(crate: Path, selector: str, *libtest: str) -> tuple[dict[str, str], set[str], int]:
    """{test: outcome}, the #[should_panic] tests, and cargo's exit status."""
    done = subprocess.run(["cargo", "test", selector, "--", "--color", "never", *libtest],
                          cwd=crate, capture_output=True, text=True, timeout=600,
                          check=False)
    found, panics = {}, set()
    for line in done.stdout.splitlines():
        match = RESULT.match(line)
        if match:
            found[match["name"]] = STATUS[match["status"]]
            if match["sp"]:
                panics.add(match["name"])
    assert found, done.stderr[-2000:]
    return found, panics, done.returncode


@pytest.mark.parametrize("ignored", ["skip", "include"])
def test_outcomes_equal_raw_cargo_test_name_for_name(
    crate: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory, ignored: str,
) -> None:
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "real-target")
    extra = ["--include-ignored"] if ignored == "include" else []
    unit, panics, unit_exit = raw_cargo(crate, "--lib", *extra)
    doc, _, doc_exit = raw_cargo(crate, "--doc", *extra)
    reprec = pytester.inline_run("--grind", f"--choirci-config={crate / 'choirci.yaml'}",
                                 f"--evidence-dir={pytester.path / 'evidence'}",
                                 "-p", "no:cacheprovider", f"--rust-ignored={ignored}")
    got = {k: v.outcome for k, v in outcomes(reprec).items()}
    ours_unit = {k.removeprefix("rust::aho-corasick::lib::"): v for k, v in got.items()
                 if k.startswith("rust::aho-corasick::lib::")}
    ours_doc = {k.removeprefix("rust::aho-corasick::doc::"): v for k, v in got.items()
                if k.startswith("rust::aho-corasick::doc::")}
    assert ours_unit == unit
    assert ours_doc == doc
    assert len(unit) > 80 and len(doc) > 50 and panics  # the crate really has all of these
    assert (ignored == "skip") == ("skipped" in doc.values())
    assert (reprec.ret == 0) == (unit_exit == doc_exit == 0)
