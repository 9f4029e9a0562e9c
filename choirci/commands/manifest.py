"""``choirci manifest``: build, verify, diff and show release manifests.

The command runs git and Nix (through :mod:`choirci.release.git` and :class:`choirci.nix.adapter.Nix`);
the manifest format and every comparison are the pure functions of :mod:`choirci.release.manifest`.
Exit status: 0 good, 1 the release is not what it should be (build failed, mismatch),
2 a harness or input problem (one ``choirci: error:`` line).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from choirci import config as config_mod
from choirci.cli import add_config_argument
from choirci.config import Closure, Config, NixSettings
from choirci.errors import ChoirciError
from choirci.nix.adapter import Nix, NixError
from choirci.nix.build import OK, ClosureResult, run_batch
from choirci.nix.lock import BuildLock
from choirci.release import compare, sign
from choirci.release import git as gitstate
from choirci.release import manifest as mf
from choirci.release.compare import Mismatch
from choirci.release.manifest import ClosureRecord, Manifest, StorePath
from choirci.release.verify import (
    all_paths,
    check_store_exists,
    content_mismatches,
    identical_copies,
    observe_bin_dir,
    package_diff,
    verify_summary,
)

HELP = "release manifests: build from a clean tree, verify a store or host, diff, show"

DESCRIPTION = """\
Release manifests pin the exact Nix store paths a commit promotes from grind to prod.

  build   from a clean git tree only (untracked files count), build the configured
          closures and write <evidence>/releases/<short-sha>.env (the 11 keys of ChoirOS's
          build-release-manifest.sh) plus .json (narHash, sizes, Nix version)
  verify  check every store path is on a store with the same narHash and, with --bin-dir,
          that the host's binaries link into the manifest's paths or are identical copies
  diff    per closure, what changed between two releases (and nix store diff-closures)
  show    print a manifest (.env or .json) as text, JSON, .env or its store paths

examples:
  choirci manifest build --output /tmp/choiros-release.env
  nix copy --from ssh://choiros-grind --to ssh://choiros-prod \\
      $(choirci manifest show /tmp/choiros-release.json --format paths)
  choirci manifest verify /tmp/choiros-release.json --store ssh://choiros-prod
  choirci manifest verify /tmp/choiros-release.env --bin-dir /opt/choiros/bin   # on prod
  choirci manifest diff evidence/releases/1dcaf0a.json evidence/releases/92c78c1.json

`choirci manifest ACTION --help` describes each action. Exit status: 0 good, 1 the release
is not what it should be (build failed, mismatch), 2 bad input or an unreachable store.
"""

BUILD_DESCRIPTION = """\
Build the configured closures from a clean checkout (untracked files count, as in
build-release-manifest.sh) and write the release manifest, by default
<evidence dir>/releases/<short-sha>.env (the 11 keys apply-release-manifest.sh sources)
and the .json beside it (narHash, sizes, Nix version). An --output inside the checkout
must be gitignored, or the next release would refuse the dirty tree.

examples:
  choirci manifest build                                      # in the checkout on grind
  choirci manifest build --output /tmp/choiros-release.env    # also writes ...release.json
  choirci manifest build --json-only --closure sandbox --output /tmp/sandbox.json
"""

VERIFY_DESCRIPTION = """\
Check that a store holds MANIFEST's paths: each is valid there and, for a .json manifest,
has the recorded narHash (a .env records none, so only presence is checked). With
--bin-dir, also check the host's binaries: a symlink into the release's store path or a
byte-identical copy of the release's binary (install-style deploys copy) matches.

examples:
  choirci manifest verify /tmp/choiros-release.json --store ssh://choiros-prod
  choirci manifest verify /tmp/choiros-release.json --bin-dir /opt/choiros/bin -v   # on prod
"""

DIFF_DESCRIPTION = """\
Per closure, what changed from release OLD to release NEW: added, removed, unchanged or
changed. A changed closure shows its old and new store path and closure size, then the
package version and size changes that `nix store diff-closures` reports when both paths
are in the local store.

example:
  choirci manifest diff evidence/releases/1dcaf0a.json evidence/releases/92c78c1.json
"""

SHOW_DESCRIPTION = """\
Print MANIFEST as text (default), as its .json or 11-key .env, or as its store paths, one
a line. A .env records no narHash, so it cannot be shown as .json.

examples:
  choirci manifest show evidence/releases/1dcaf0a.json
  choirci manifest show /tmp/choiros-release.json --format env > /tmp/choiros-release.env
  nix copy --to ssh://choiros-prod $(choirci manifest show M.json --format paths)
"""
CONFIG_HELP = ("choirci.yaml (default: $CHOIRCI_CONFIG, else the nearest at or above the "
               "current directory; verify and diff also run without one)")

class BuildFailed(ChoirciError):
    """The release's closures did not build: the system under test failed (exit 1)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    build = action("build", "build the closures and write the manifest", BUILD_DESCRIPTION)
    build.add_argument("--output", metavar="PATH", type=Path,
                       help="the .env to write, the .json goes beside it (default: "
                       "<evidence dir>/releases/<short-sha>.env); refused inside the checkout "
                       "unless gitignored, since it would dirty the next release's tree")
    build.add_argument("--closure", metavar="NAME", action="append", default=[],
                       help="only this closure (repeatable; default: every configured one)")
    build.add_argument("--json-only", action="store_true",
                       help="write only the .json (for closures other than the classic "
                       "sandbox/hypervisor/desktop that the .env form needs)")
    verify = action("verify", "check a store (and host) holds the manifest's paths",
                    VERIFY_DESCRIPTION)
    verify.add_argument("manifest", metavar="MANIFEST", type=Path,
                        help="a manifest .json (checks narHash too) or .env")
    verify.add_argument("--store", metavar="URI",
                        help="the Nix store to check, e.g. ssh://choiros-prod, /tmp/prodstore "
                        "(a chroot store) or file:///cache (default: the local store)")
    verify.add_argument("--bin-dir", metavar="DIR", type=Path,
                        help="also check DIR/{sandbox,hypervisor,dioxus-desktop} (e.g. "
                        "/opt/choiros/bin on the host): each must link into the manifest's "
                        "paths or be an identical copy of the release's binary")
    verify.add_argument("--check-contents", action="store_true",
                        help="also re-hash the files on the store (nix store verify)")
    verify.add_argument("--require-signature", metavar="KEY", default=None,
                        help="also require every path to carry a valid signature by this Nix "
                        "public key (NAME:BASE64, e.g. the grind key) on the store")
    verify.add_argument("-v", "--verbose", action="store_true",
                        help="also print one 'ok' line per path and binary that matches")
    diff = action("diff", "what changed between two releases", DIFF_DESCRIPTION)
    diff.add_argument("old", metavar="OLD", type=Path, help="the earlier manifest (.json or .env)")
    diff.add_argument("new", metavar="NEW", type=Path, help="the later manifest (.json or .env)")
    show = action("show", "print a manifest", SHOW_DESCRIPTION)
    show.add_argument("manifest", metavar="MANIFEST", type=Path,
                      help="a manifest .json or .env (told apart by content)")
    show.add_argument("--format", choices=("text", "json", "env", "paths"), default="text",
                      help="text: readable summary; json/env: the manifest in that form; "
                      "paths: one store path a line, for `nix copy`")
    for command in (build, verify, diff):
        add_config_argument(command, CONFIG_HELP)


def run(args: argparse.Namespace) -> int:
    actions = {"build": run_build, "verify": run_verify, "diff": run_diff, "show": run_show}
    try:
        return actions[args.action](args)
    except BuildFailed as exc:
        print(f"choirci: manifest build: {exc}", file=sys.stderr)
        return 1


# --------------------------------------------------------------------------- build


def run_build(args: argparse.Namespace) -> int:
    cfg = config_mod.resolve(args.config, Path.cwd())
    closures = select(cfg, args.closure)
    if not args.json_only and (problem := mf.env_problem([c.name for c in closures])):
        raise ChoirciError(problem)
    root = gitstate.toplevel(cfg.root)
    gitstate.require_clean(root)
    head = gitstate.head(root)
    env_path, json_path = output_paths(cfg, head.short, args.output, args.json_only)
    guard_outputs(root, [path for path in (env_path, json_path) if path is not None],
                  cfg.evidence_dir)
    release = build_release(cfg, closures, root, head)
    for written in mf.write(release, env_path=env_path, json_path=json_path):
        print(f"Release manifest written to {written}")
    print(f"SHA: {release.release_sha}")
    for closure in release.closures:
        print(f"{closure.name.capitalize()}: {closure.store_path}")
    return 0


def select(cfg: Config, names: Sequence[str]) -> tuple[Closure, ...]:
    chosen = tuple(cfg.closure(name) for name in names) if names else cfg.closures
    if not chosen:
        raise ChoirciError(f"{cfg.path or cfg.root}: no closures configured; a release "
                           "manifest pins closures (add closures: to choirci.yaml)")
    return chosen


def output_paths(cfg: Config, short: str, output: Path | None,
                 json_only: bool) -> tuple[Path | None, Path]:
    """The .env (None with --json-only) and the .json beside it: same name, other suffix."""
    base = (output or cfg.evidence_dir / "releases" / f"{short}.env").absolute()
    if base.suffix not in (".env", ".json"):
        raise ChoirciError(f"--output {output}: must end in .env or .json (both are written, "
                           "side by side: NAME.env and NAME.json)")
    return (None if json_only else base.with_suffix(".env")), base.with_suffix(".json")


def guard_outputs(root: Path, paths: Sequence[Path], evidence_dir: Path | None = None) -> None:
    """Trap §8.4: a manifest written into the checkout makes the next release refuse."""
    dirtying = [path for path in paths if gitstate.would_dirty(root, path)]
    if not dirtying:
        return
    # Under the evidence dir the file name changes every commit: ignore the dir, once.
    lines = " and ".join(f"'{line}'" for line in
                         gitstate.ignore_lines(root, dirtying, evidence_dir))
    them = "them" if len(dirtying) > 1 else "it"
    raise ChoirciError(
        f"{', '.join(map(str, dirtying))}: inside the checkout {root} and not gitignored, so "
        f"writing {them} would dirty the tree and the next release build would refuse; pass "
        "--output outside the checkout (e.g. /tmp/choiros-release.env), or add the lines "
        f"{lines} to {root / '.gitignore'} and commit that"
    )


def build_release(cfg: Config, closures: Sequence[Closure], root: Path,
                  head: gitstate.Head, now: datetime | None = None) -> Manifest:
    """The same batched build as ``pytest --grind`` (closure_build.run_batch: one nix build,
    each closure resolved by its own dry-run entry, path-info with closure sizes)."""
    nix = Nix.from_settings(cfg.nix, cfg.root)
    with BuildLock.for_config(cfg, notify=_say):
        batch = run_batch(nix, closures, progress=_say)
    failed = [r for r in batch.results.values() if r.status != OK]
    if failed:
        raise BuildFailed("; ".join(r.message for r in failed)
                          + "; no manifest written (the build log is above)")
    try:
        gitstate.require_clean(root)
    except gitstate.DirtyTree as exc:
        # e.g. a root flake without flake.lock gets one written (trap §8.5).
        raise ChoirciError(f"the build changed the checkout: {exc}") from None
    return Manifest(
        release_sha=head.sha, short_sha=head.short, repo_root=str(root), git_dirty=False,
        created_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        nix_version=batch.nix_version,
        closures=tuple(_record(batch.results[c.name]) for c in closures),
    )


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _record(result: ClosureResult) -> ClosureRecord:
    closure = result.closure
    outputs = sorted(result.outputs.items(), key=lambda kv: (kv[0] != "out", kv[0]))
    binary = mf.CLASSIC.get(closure.name, (None, None))[1]
    record = ClosureRecord(
        name=closure.name, installable=closure.installable, drv_path=result.drv_path, bin=binary,
        outputs=tuple(
            StorePath(name, path, result.infos[path].nar_hash, result.infos[path].nar_size,
                      result.infos[path].closure_size)
            for name, path in outputs
        ),
    )
    if record.bin_path and not os.access(record.bin_path, os.X_OK):
        raise BuildFailed(f"{closure.name}: {record.bin_path} is missing or not executable; "
                          "the release scripts run it from /opt/choiros/bin")
    return record


# --------------------------------------------------------------------------- verify


def run_verify(args: argparse.Namespace) -> int:
    release = mf.load(args.manifest)
    nix = Nix.from_settings(_nix_settings(args.config), None, args.store)
    where = args.store or "local"
    check_store_exists(args.store)
    try:
        infos = nix.path_info(all_paths(release))
    except NixError as exc:
        raise ChoirciError(f"--store {where}: cannot query it ({exc}); check the store URI "
                           "and that SSH to the host works") from None
    mismatches = compare.compare_store(release, infos, where)
    if args.check_contents:
        present = [p for p in all_paths(release)
                   if not any(m.expected == p for m in mismatches)]
        mismatches += content_mismatches(nix, release, present, args.store)
    unsigned = (sign.manifest_signature_problems(nix, release, args.require_signature, where)
                if args.require_signature else [])
    if args.verbose:
        print_store_matches(release, mismatches, where)
    copies: dict[str, str] = {}
    if args.bin_dir is not None:
        observed = observe_bin_dir(release, args.bin_dir)
        copies = identical_copies(release, observed)
        found = compare.compare_running(release, observed, str(args.bin_dir), identical=copies)
        if args.verbose:
            print_bin_matches(release, args.bin_dir, observed, copies, found)
        mismatches += found
    for mismatch in mismatches:
        print(f"MISMATCH {mismatch}")
    for problem in unsigned:
        print(f"UNSIGNED {problem}")
    print(verify_summary(release, where, mismatches, args.bin_dir, len(copies)))
    if args.require_signature and not unsigned:
        print(f"manifest verify: every path carries a valid signature by "
              f"{sign.key_name(args.require_signature)}")
    return 1 if mismatches or unsigned else 0


def print_store_matches(release: Manifest, mismatches: Sequence[Mismatch], where: str) -> None:
    bad = {m.closure for m in mismatches}
    for closure in release.closures:
        for o in closure.outputs:
            if closure.name not in bad:
                hashed = f" with narHash {o.nar_hash}" if o.nar_hash else ""
                print(f"ok {closure.name}.{o.output}: {o.path} on {where}{hashed}")


def print_bin_matches(release: Manifest, bin_dir: Path, observed: Mapping[str, str | None],
                      copies: Mapping[str, str], mismatches: Sequence[Mismatch]) -> None:
    bad = {m.closure for m in mismatches}
    for name, actual in observed.items():
        closure = release.closure(name)
        if closure is None or closure.bin is None or name in bad:
            continue
        link = bin_dir / Path(closure.bin).name
        if name in copies:
            print(f"ok {name}: {link} is an identical copy of {closure.bin_path} "
                  f"(sha256 {copies[name]})")
        else:
            print(f"ok {name}: {link} -> {actual}")


def _nix_settings(explicit: str | None) -> NixSettings:
    """Verify and diff run on prod too, where no choirci.yaml exists: defaults then."""
    chosen = explicit or os.environ.get("CHOIRCI_CONFIG")
    path = Path(chosen) if chosen else config_mod.find_config(Path.cwd())
    return config_mod.load(path).nix if path is not None else NixSettings()


# --------------------------------------------------------------------------- diff and show


def run_diff(args: argparse.Namespace) -> int:
    old, new = mf.load(args.old), mf.load(args.new)
    nix = Nix.from_settings(_nix_settings(args.config), None)
    print(f"release {old.short_sha} -> {new.short_sha}")
    for change in compare.diff(old, new):
        print(f"  {change.name}: {change.status}")
        if change.status == "unchanged":
            continue
        before, after = change.before, change.after
        print(f"    - {before.store_path if before else '(none)'}"
              f"{_size(before)}\n    + {after.store_path if after else '(none)'}{_size(after)}")
        if before is not None and after is not None:
            for line in package_diff(nix, before.store_path, after.store_path):
                print(f"    {line}")
    return 0


def _size(closure: ClosureRecord | None) -> str:
    size = closure.main.closure_size if closure else None
    return f" (closure {size} bytes)" if size else ""


def run_show(args: argparse.Namespace) -> int:
    release = mf.load(args.manifest)
    if args.format == "json" and release.source == "env":
        raise ChoirciError(f"{args.manifest}: a .env manifest records no narHash, so it cannot "
                           "be shown as .json; show the .json that `choirci manifest build` "
                           "wrote beside it")
    if args.format == "paths":
        print("\n".join(all_paths(release)))
    elif args.format == "json":
        print(mf.to_json(release), end="")
    elif args.format == "env":
        print(mf.to_env(release), end="")
    else:
        print(f"release {release.release_sha} ({release.short_sha}), created "
              f"{release.created_at}, dirty={str(release.git_dirty).lower()}, from {release.source}")
        for closure in release.closures:
            for o in closure.outputs:
                size = f", closure {o.closure_size} bytes" if o.closure_size else ""
                print(f"  {closure.name}.{o.output}: {o.path}"
                      f"{f' ({o.nar_hash}{size})' if o.nar_hash else ''}")
    return 0
