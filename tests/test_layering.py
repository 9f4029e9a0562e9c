"""The package layout holds: no import reaches up a layer, adapters import no pytest, evidence
and gates import no area, no import cycle, and every package ships.

The layers, lowest first (README "Architecture"). A module may import its own layer or a lower
one; anything else is a violation. Imports under ``if TYPE_CHECKING:`` count for layering
(a type is a dependency) but not for cycles (they never run). The graph is read with ``ast``,
nothing is imported, so a planted violation is found without executing it.
"""

from __future__ import annotations

import ast
import fnmatch
import shutil
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "choirci"

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("choirci", "choirci.errors", "choirci.proc", "choirci.text",
              "choirci.evidence.atomic")),
    ("config", ("choirci.config", "choirci.config.*", "choirci.areas")),
    ("adapters", ("choirci.nix.adapter", "choirci.nix.formats", "choirci.nix.hashes",
                  "choirci.nix.lock",
                  "choirci.nix.build", "choirci.nix.timing", "choirci.rust.cargo", "choirci.rust.metadata", "choirci.rust.libtest",
                  "choirci.rust.plan", "choirci.rust.run", "choirci.rust.discover",
                  "choirci.rust.claims", "choirci.hosts.probe",
                  "choirci.hosts.promoted", "choirci.hosts.connect", "choirci.release.manifest",
                  "choirci.release.compare", "choirci.release.verify", "choirci.release.git",
                  "choirci.release.sign", "choirci.release.bundle",
                  "choirci.evidence.workspace")),
    ("record", ("choirci.evidence.record", "choirci.evidence.naming", "choirci.evidence.redact",
                "choirci.release.record")),
    ("judging", ("choirci.gates", "choirci.gates.*", "choirci.evidence.junit",
                 "choirci.evidence.markdown", "choirci.evidence.files", "choirci.ci",
                 "choirci.ci.*", "choirci.release.promote")),
    ("areas", ("choirci.settings", "choirci.items", "choirci.narrowing", "choirci.selection",
               "choirci.progress", "choirci.nix.closures", "choirci.nix.loops",
               "choirci.rust.area", "choirci.rust.sharing", "choirci.hosts.area", "choirci.hosts.lib",
               "choirci.release.smoke")),
    ("entry", ("choirci.plugin", "choirci.cli", "choirci.commands", "choirci.commands.*",
               "choirci.session", "choirci.session.*")),
)
# Package __init__ files that only hold a docstring sit at the bottom.
DOC_ONLY_PACKAGES = ("choirci.nix", "choirci.rust", "choirci.hosts", "choirci.evidence",
                     "choirci.release")
# The readers of the record: no pytest, no area (DESIGN.md layer 5).
READERS = ("choirci.evidence", "choirci.gates", "choirci.ci")
PYTEST = ("pytest", "_pytest", "xdist", "pluggy")
AREA_MODULES = ("choirci.items", "choirci.nix.closures", "choirci.nix.loops", "choirci.rust.area",
                "choirci.hosts.area", "choirci.hosts.lib", "choirci.release.smoke")


@dataclass(frozen=True)
class Import:
    source: str
    target: str  # a choirci module, or the top-level name of a third-party one
    line: int
    type_only: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    return {module_name(root, path): path for path in sorted(root.rglob("*.py"))}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                for sub in ast.walk(inner):
                    if hasattr(sub, "lineno"):
                        lines.add(sub.lineno)
    return lines


def imports(root: Path) -> Iterator[Import]:
    known = modules(root)
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typed = _type_checking_lines(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from choirci.x import y`` depends on choirci.x.y when that is a module.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                           for alias in node.names]
            for target in targets:
                if not target.startswith("choirci"):
                    target = target.split(".")[0]
                yield Import(name, target, node.lineno, node.lineno in typed)


def layer_of(name: str) -> int | None:
    for index, (_layer, patterns) in enumerate(LAYERS):
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return index
    return 0 if name in DOC_ONLY_PACKAGES else None


def violations(root: Path) -> list[str]:
    found: list[str] = []
    known = modules(root)
    for name in known:
        if layer_of(name) is None:
            found.append(f"{name}: in no layer; add it to LAYERS in tests/test_layering.py "
                         "and to the README's architecture")
    graph: dict[str, set[str]] = {name: set() for name in known}
    for imp in imports(root):
        source_layer = layer_of(imp.source)
        if imp.target.startswith("choirci"):
            target_layer = layer_of(imp.target)
            if source_layer is not None and target_layer is not None \
                    and target_layer > source_layer:
                found.append(f"{imp.source}:{imp.line}: imports {imp.target} "
                             f"({LAYERS[source_layer][0]} -> {LAYERS[target_layer][0]}: upward)")
            if imp.source.startswith(READERS + ("choirci.session",)) \
                    and imp.target in AREA_MODULES:
                found.append(f"{imp.source}:{imp.line}: imports the area module {imp.target}")
            if not imp.type_only and imp.target in graph:
                graph[imp.source].add(imp.target)
        elif imp.target in PYTEST and source_layer is not None \
                and (LAYERS[source_layer][0] in ("base", "config", "adapters")
                     or imp.source.startswith(READERS)):
            found.append(f"{imp.source}:{imp.line}: imports {imp.target} "
                         "(this layer runs without pytest)")
    found += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One example cycle per strongly connected component with more than one module."""
    out: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                out.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return out


def test_the_package_layering_holds() -> None:
    assert violations(PACKAGE) == []


@pytest.fixture()
def planted(tmp_path: Path) -> Path:
    copy = tmp_path / "choirci"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(copy) == []
    return copy


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")


def test_a_planted_upward_import_is_found(planted: Path) -> None:
    _append(planted / "nix" / "formats.py", "from choirci.plugin import MARKERS  # noqa")
    line = len((planted / "nix" / "formats.py").read_text().splitlines())
    problems = violations(planted)
    assert problems[0] == (f"choirci.nix.formats:{line}: imports choirci.plugin "
                           "(adapters -> entry: upward)")
    # ...and since the plugin imports down to the Nix adapter, which imports formats: loops.
    assert problems[1:] and all(
        p.startswith("import cycle: choirci.nix.adapter -> choirci.nix.formats -> choirci.plugin")
        and p.endswith("-> choirci.nix.adapter") for p in problems[1:]), problems


def test_a_planted_pytest_import_in_an_adapter_is_found(planted: Path) -> None:
    _append(planted / "rust" / "libtest.py", "import pytest  # noqa")
    [problem] = violations(planted)
    assert problem.startswith("choirci.rust.libtest:") and "imports pytest" in problem


def test_a_planted_area_import_in_evidence_is_found(planted: Path) -> None:
    # Same layer as far as ranks go? No: areas are above evidence; both rules report it.
    _append(planted / "evidence" / "junit.py", "from choirci.rust import area  # noqa")
    problems = violations(planted)
    assert any("imports the area module choirci.rust.area" in p for p in problems), problems
    assert any("(judging -> areas: upward)" in p for p in problems), problems


def test_a_planted_cycle_and_an_unplaced_module_are_found(planted: Path) -> None:
    _append(planted / "gates" / "definitions.py", "from choirci.gates import verdicts  # noqa")
    (planted / "newthing.py").write_text('"""x"""\n', encoding="utf-8")
    problems = violations(planted)
    assert "import cycle: choirci.gates.verdicts -> choirci.gates.definitions -> " \
        "choirci.gates.verdicts" in problems
    assert any(p.startswith("choirci.newthing: in no layer") for p in problems), problems


def test_type_only_imports_count_for_layers_but_not_cycles(planted: Path) -> None:
    path = planted / "config" / "rust.py"
    assert "from choirci.config.reader import Reader as _Reader" in path.read_text()
    # config/__init__ imports config.rust at run time; a type-only import back is no cycle.
    _append(path, "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                  "    from choirci.config import Config  # noqa")
    assert violations(planted) == []


def test_every_package_is_shipped() -> None:
    """pyproject lists packages explicitly: a subpackage missing there is missing from the
    wheel (an editable install would hide it)."""
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(data["tool"]["setuptools"]["packages"])
    on_disk = {module_name(PACKAGE, p.parent / "__init__.py")
               for p in PACKAGE.rglob("__init__.py")}
    assert on_disk | {"choirci.checks"} == listed


def test_no_module_is_past_the_size_budget() -> None:
    """Split by responsibility before a module grows past ~400 lines (STYLE.md)."""
    big = {name: n for name, path in modules(PACKAGE).items()
           if (n := len(path.read_text(encoding="utf-8").splitlines())) > 420}
    assert big == {}
