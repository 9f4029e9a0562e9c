"""``choirci init [DIR]``: inspect a repository and write a commented ``choirci.yaml``.

What it reads, all offline:

* closures from ``nix flake show --json`` of the root flake and of each sub-flake one level
  down (``./sandbox#sandbox``), for the current system; NixOS systems as their toplevel
  (``.#nixosConfigurations.<host>.config.system.build.toplevel``). A flake that does not
  evaluate here (inputs not fetched, no network) is listed as a comment saying so.
* Rust targets from ``cargo metadata --no-deps`` of the workspace and of every crate outside
  it that has its own ``Cargo.toml`` (then with ``manifest:``): each crate's unit tests (lib
  and bins, as ``cargo test --workspace --lib --bins`` runs them) and each integration test,
  every one with its ``kind:``.
* CI-parity loop steps from the ``run:`` lines of ``.github/workflows/*.yml`` that are plain
  cargo or nix commands (fmt, clippy, check, test, build, flake check); anything with shell
  syntax is left as a comment.

It refuses to overwrite an existing file (``--print`` writes to stdout instead), checks that
what it wrote loads as a valid config, and adds ``/evidence/`` to ``.gitignore`` (evidence in
the tree would make ``choirci manifest build`` refuse a dirty tree).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from choirci import config as config_mod
from choirci import proc
from choirci.errors import ChoirciError, ToolMissing
from choirci.rust.metadata import LIB, is_lib, needs_features

HELP = "write a commented choirci.yaml for a repository (closures, Rust targets, loop steps)"
DESCRIPTION = """\
Inspect DIR (default: .) and write DIR/choirci.yaml: closures from the flakes' outputs, Rust
test targets from cargo metadata, CI-parity loop steps from .github/workflows. Never
overwrites a file; --print writes to stdout instead. Also adds /evidence/ to .gitignore.

examples:
  choirci init                 # in the repository root
  choirci init ../choiros-rs --print
"""
TIMEOUT = 180.0
SYSTEMS = {"x86_64": "x86_64-linux", "aarch64": "aarch64-linux"}
NIX = ("nix", "--extra-experimental-features", "nix-command flakes")
LOOP_COMMANDS = re.compile(r"^(cargo (fmt|clippy|check|test|build)|nix (build|flake check))\b")
SHELL_SYNTAX = re.compile(r"[|&;<>$`()]|\|\|")


@dataclass
class Found:
    closures: list[tuple[str, str]] = field(default_factory=list)  # name -> installable
    closure_notes: list[str] = field(default_factory=list)
    rust: list[dict[str, Any]] = field(default_factory=list)
    rust_notes: list[str] = field(default_factory=list)
    loops: list[tuple[str, list[str], str]] = field(default_factory=list)  # name, argv, source
    loop_notes: list[str] = field(default_factory=list)
    # `cargo test --workspace --lib --bins` in CI: its kinds, as rust.workspace (and source)
    workspace: tuple[tuple[str, ...], str] | None = None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", nargs="?", type=Path, default=Path("."),
                        help="the repository root (default: .)")
    parser.add_argument("--print", action="store_true", dest="to_stdout",
                        help="write the config to stdout instead of DIR/choirci.yaml")


def run(args: argparse.Namespace) -> int:
    root = args.dir.resolve()
    if not root.is_dir():
        raise ChoirciError(f"{args.dir}: no such directory; pass the repository root")
    target = root / "choirci.yaml"
    if target.exists() and not args.to_stdout:
        raise ChoirciError(f"{target} exists; choirci init never overwrites it (use --print to "
                           "see what it would write, then merge by hand)")
    text = render(inspect(root, progress=lambda line: print(f"choirci init: {line}",
                                                              file=sys.stderr)))
    check_valid(text, root)
    if args.to_stdout:
        print(text, end="")
        return 0
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    if add_ignore_line(root):
        print(f"added /evidence/ to {root / '.gitignore'}")
    print("next: review it, then run `pytest --grind`")
    return 0


# --------------------------------------------------------------------------- inspection


def inspect(root: Path, progress: Any = None) -> Found:
    found = Found()
    say = progress or (lambda _line: None)
    # Sub-flakes first: a root flake re-exporting the same packages adds no new closure.
    for flake in [*sorted(p.parent for p in root.glob("*/flake.nix")), root]:
        if (flake / "flake.nix").is_file():
            say(f"reading flake outputs of {flake.relative_to(root) or '.'}")
            _closures(root, flake, found)
    say("reading cargo metadata")
    _rust(root, found)
    _loops(root, found)
    return found


def _flake_ref(root: Path, flake: Path) -> str:
    relative = flake.relative_to(root).as_posix()
    return "." if relative == "." else f"./{relative}"


def _closures(root: Path, flake: Path, found: Found) -> None:
    ref = _flake_ref(root, flake)
    try:
        result = proc.run([*NIX, "flake", "show", "--json", "--no-write-lock-file", ref],
                          cwd=root, timeout=TIMEOUT)
    except ToolMissing:
        found.closure_notes.append(f"{ref}: nix is not installed here; add its packages as "
                                   f"NAME: {ref}#ATTR")
        return
    if not result.ok:
        why = (result.stderr.strip().splitlines() or [result.describe_exit()])[-1]
        if _untracked(flake):
            why = "flake.nix is not tracked by git, and a flake in a git checkout sees only " \
                  "tracked files: git add it"
        found.closure_notes.append(f"{ref}: `nix flake show` failed here ({why[:160]}); "
                                   f"add its packages as NAME: {ref}#ATTR")
        return
    try:
        outputs = json.loads(result.stdout)
    except ValueError:
        found.closure_notes.append(f"{ref}: `nix flake show --json` printed no JSON")
        return
    system = SYSTEMS.get(platform.machine(), "x86_64-linux")
    taken = {name for name, _ in found.closures}
    attrs = sorted((outputs.get("packages") or {}).get(system) or {})
    if len(attrs) > 1:
        attrs = [attr for attr in attrs if attr != "default"]  # an alias of one of the others
    for attr in attrs:
        name = flake.name if attr == "default" else attr
        if name in taken:
            found.closure_notes.append(f"{ref}#{attr} is another way to build '{name}' "
                                       "(listed above)")
            continue
        found.closures.append((name, f"{ref}#{attr}"))
        taken.add(name)
    for host in sorted(outputs.get("nixosConfigurations") or {}):
        found.closures.append((f"system-{host}", (f"{ref}#nixosConfigurations.{host}"
                                                   ".config.system.build.toplevel")))


def _untracked(flake: Path) -> bool:
    try:
        result = proc.run(["git", "ls-files", "--error-unmatch", "flake.nix"], cwd=flake,
                          timeout=60)
    except ToolMissing:
        return False
    return result.returncode == 1 and "did not match" in result.stderr


def _metadata(root: Path, manifest: Path | None) -> dict[str, Any] | None:
    argv = ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"]
    if manifest is not None:
        argv += ["--manifest-path", str(manifest)]
    try:
        result = proc.run(argv, cwd=root, timeout=TIMEOUT)
    except ToolMissing:
        return None
    if not result.ok:
        return None
    try:
        data: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return None
    return data


def _rust(root: Path, found: Found) -> None:
    if not (root / "Cargo.toml").is_file():
        found.rust_notes.append("no Cargo.toml at the root: add rust.targets by hand")
        return
    data = _metadata(root, None)
    if data is None:
        found.rust_notes.append("`cargo metadata --no-deps` failed at the root; add rust.targets "
                                "by hand")
        return
    members = set(data.get("workspace_members") or ())
    known = set()
    for package in data.get("packages", ()):
        if package.get("id") in members:
            known.add(Path(package["manifest_path"]).resolve())
            found.rust += _targets(package, None)
            found.rust_notes += [
                f"{package['name']}::{t['name']} has test = false (cargo test runs it only when "
                "named): not listed; add it if it should gate"
                for t in package.get("targets", ())
                if "test" in t.get("kind", ()) and t.get("test") is False]
    for manifest in sorted(root.glob("*/Cargo.toml")):
        if manifest.resolve() in known or "target" in manifest.parts:
            continue
        outside = _metadata(root, manifest)
        if outside is None:
            found.rust_notes.append(f"{manifest.relative_to(root)}: cargo metadata failed")
            continue
        for package in outside.get("packages", ()):
            if Path(package["manifest_path"]).resolve() == manifest.resolve():
                found.rust += _targets(package, manifest.relative_to(root).as_posix())


def _targets(package: dict[str, Any], manifest: str | None) -> list[dict[str, Any]]:
    """The crate's unit tests (lib, each [[bin]]) and each integration test, with an explicit
    kind so that no name can mean two targets (tests/lib.rs is ``test: lib``, not ``--lib``)."""
    out: list[dict[str, Any]] = []
    targets = package.get("targets", ())
    kinds = [(t["name"], set(t.get("kind", ()))) for t in targets]
    if any(is_lib(tuple(kind)) for _, kind in kinds):
        out.append({"crate": package["name"], "kind": "lib"})
    out += [{"crate": package["name"], "kind": "bin", "test": name}
            for name, kind in kinds if "bin" in kind]
    # `test = false`: cargo test runs it only when named; so does choirci (add it by hand).
    out += [{"crate": package["name"], "kind": "test", "test": t["name"]}
            for t in targets if "test" in t.get("kind", ()) and t.get("test") is not False]
    lacking = needs_features(targets, package.get("features") or {})
    for entry in out:
        # required-features the defaults leave off: cargo builds it only with them.
        features = lacking.get((LIB, LIB) if entry["kind"] == "lib" else
                               (entry["kind"], entry.get("test", "")))
        if features:
            entry["features"] = list(features)
        if manifest is not None:
            entry["manifest"] = manifest
    return out


def _run_lines(path: Path) -> Iterator[str]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return
    jobs = data.get("jobs") if isinstance(data, dict) else None
    for job in (jobs or {}).values():
        for step in (job or {}).get("steps") or () if isinstance(job, dict) else ():
            run = step.get("run") if isinstance(step, dict) else None
            if isinstance(run, str):
                yield from (line.strip() for line in run.splitlines() if line.strip())


def _loops(root: Path, found: Found) -> None:
    seen: set[str] = set()
    for path in sorted((root / ".github" / "workflows").glob("*.y*ml")):
        source = path.relative_to(root).as_posix()
        for line in _run_lines(path):
            if not LOOP_COMMANDS.match(line) or line in seen:
                continue
            seen.add(line)
            if SHELL_SYNTAX.search(line):
                found.loop_notes.append(f"{source}: `{line}` uses shell syntax; add it by hand")
                continue
            argv = shlex.split(line)
            kinds = _workspace_kinds(argv)
            if kinds and found.workspace is None:
                found.workspace = (kinds, source)  # items, one per test: better than a loop
                continue
            name = _loop_name(argv, {n for n, _, _ in found.loops})
            found.loops.append((name, argv, source))


WORKSPACE_FLAGS = {"--lib": "lib", "--bins": "bin", "--tests": "test", "--doc": "doc"}


def _workspace_kinds(argv: list[str]) -> tuple[str, ...]:
    """``cargo test --workspace --lib --bins`` -> (lib, bin); () for anything else (filters,
    packages, features: not a whole-workspace selection)."""
    if argv[:2] != ["cargo", "test"] or "--workspace" not in argv:
        return ()
    rest = [a for a in argv[2:] if a not in ("--workspace", "--offline", "--locked")]
    if any(a not in WORKSPACE_FLAGS for a in rest):
        return ()
    return tuple(WORKSPACE_FLAGS[a] for a in rest) or ("lib", "bin", "test", "doc")


def _loop_name(argv: list[str], taken: set[str]) -> str:
    words = [w for w in argv[1:] if re.fullmatch(r"[A-Za-z][\w.-]*", w)][:2]
    base = "-".join(words) if argv[0] == "nix" else (words[0] if words else argv[0])
    base = base or "step"
    name, counter = base, 2
    while name in taken:
        name, counter = f"{base}-{counter}", counter + 1
    return name


# --------------------------------------------------------------------------- rendering


def _q(value: str) -> str:
    return json.dumps(value) if re.search(r"[:#{}\[\],&*!|>'\"%@`]|^\s|\s$", value) else value


def render(found: Found) -> str:
    lines = ["# choirci configuration written by `choirci init`; review it, then `pytest --grind`.",
             "# Reference: README \"Config reference\". Every key is optional.", ""]
    lines += ["closures:                      # name -> flake installable, one item each"]
    lines += [f"  {_q(name)}: {_q(installable)}" for name, installable in found.closures]
    lines += [f"  # {note}" for note in found.closure_notes]
    if not found.closures:
        lines[-1 - len(found.closure_notes)] = "closures: {}                   # none found"
    lines += ["", "loops:                         # CI-parity steps, from .github/workflows"]
    lines += [f"  {_q(name)}: {json.dumps(argv)}   # {source}" for name, argv, source in found.loops]
    lines += [f"  # {note}" for note in found.loop_notes]
    if not found.loops:
        lines[-1 - len(found.loop_notes)] = "loops: {}                      # none found"
    lines += ["", "rust:"]
    covered: tuple[str, ...] = ()
    if found.workspace is not None:
        covered, source = found.workspace
        lines += [f"  workspace:                    # as CI runs it ({source})",
                  f"    kinds: [{', '.join(covered)}]"]
    lines += ["  targets:                      # exact test binaries (never filters)"]
    for target in found.rust:
        if "manifest" not in target and target["kind"] in covered:
            continue  # rust.workspace runs it
        lines.append(f"    - crate: {_q(target['crate'])}")
        lines.append(f"      kind: {target['kind']}")
        if "test" in target:
            lines.append(f"      test: {_q(target['test'])}")
        if "features" in target:
            shown = ", ".join(_q(f) for f in target["features"])
            lines.append(f"      features: [{shown}]   # its required-features")
        if "manifest" in target:
            lines.append(f"      manifest: {_q(target['manifest'])}   # outside the workspace")
    lines += [f"  # {note}" for note in found.rust_notes]
    if not any("manifest" in t or t["kind"] not in covered for t in found.rust):
        lines[lines.index("  targets:                      # exact test binaries (never filters)")] \
            = "  targets: []"
    lines += ["", "# Host checks need a host to check, e.g.:", "# hosts:",
              "#   grind: ssh://root@choiros-grind", "", ("evidence: evidence              "
              "# keep it out of git: /evidence/ in .gitignore"), ""]
    return "\n".join(lines)


def check_valid(text: str, root: Path) -> None:
    """What init writes must load: the config is parsed from a temporary copy in ``root``."""
    with tempfile.NamedTemporaryFile("w", dir=root, prefix=".choirci-init-", suffix=".yaml",
                                     delete=True, encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        try:
            config_mod.load(Path(handle.name))
        except ChoirciError as exc:
            raise ChoirciError(f"choirci init produced an invalid config ({exc}); please "
                               "report this, and write choirci.yaml by hand meanwhile") from None


def add_ignore_line(root: Path) -> bool:
    if not (root / ".git").exists():
        return False
    ignore = root / ".gitignore"
    current = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    if any(line.strip() in ("/evidence/", "evidence/", "/evidence", "evidence")
           for line in current.splitlines()):
        return False
    ignore.write_text(current + ("" if current.endswith("\n") or not current else "\n")
                      + "/evidence/\n", encoding="utf-8")
    return True
