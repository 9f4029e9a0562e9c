"""Resolve wanted targets into binary plans: one ``cargo metadata`` per manifest, one compile
per (crate, feature set) for all its binaries, one ``cargo test`` call with an
environment-recording runner for the same binaries (so each runs with what cargo gives
it), and one listing per binary (a second, ``--ignored``, only for ``rust.ignored: only``).
Doc tests are listed through ``cargo test --doc -- --list``. Problems (unknown crate or
binary, compile error, zero tests) become part of the plans; a bare name that means two
targets (``lib``: ``--lib`` or tests/lib.rs) is a :class:`ConfigError`. Never imports pytest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from choirci import proc
from choirci.config.rust import RustSettings, RustTarget
from choirci.errors import ConfigError, ToolMissing
from choirci.rust import cargo as cargo_mod
from choirci.rust import libtest
from choirci.rust.plan import BinaryPlan, Problem, Wanted, nearest, segment

LIST_TIMEOUT = 120.0
WORKSPACE_ORIGIN = "rust.workspace"
KIND_TEXT = {"lib": "the library's unit tests (--lib)", "doc": "the doc tests (--doc)",
             "test": "the integration test tests/{name}.rs (--test)",
             "bin": "the unit tests of [[bin]] {name} (--bin)"}


def discover(wanted: Sequence[Wanted], cargo: cargo_mod.Cargo, ignored: str = "skip"
             ) -> list[BinaryPlan]:
    """Compile and list every wanted binary once; problems become part of the plans."""
    plans = [
        BinaryPlan(w.crate, w.binary, w.features, w.origin, segment(w, wanted), w.tests,
                   manifest=w.manifest, named=w.named, asked_kind=w.kind,
                   exclusive=w.exclusive)
        for w in wanted
    ]
    for manifest in dict.fromkeys(plan.manifest for plan in plans):
        plans = _located(plans, manifest, cargo, wanted)
    groups: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for index, plan in enumerate(plans):
        if plan.problem is not None:
            continue
        if plan.kind == cargo_mod.DOC:
            plans[index] = _doc_listed(plan, cargo, ignored)
            continue
        groups.setdefault((plan.manifest, plan.crate, plan.features), []).append(index)
    for (manifest, crate, features), indexes in groups.items():
        selectors = list(dict.fromkeys(plans[i].selector for i in indexes))
        try:
            build = cargo.build(crate, selectors, features, manifest=manifest or None)
        except ToolMissing as exc:
            for i in indexes:
                plans[i] = dataclasses.replace(plans[i], problem=Problem(str(exc), harness=True))
            continue
        for i in indexes:
            plans[i] = _built(plans[i], build)
        built = [i for i in indexes if plans[i].problem is None]
        _with_env(plans, built, cargo, crate, features, manifest)
        for i in built:
            plans[i] = _listed(plans[i], ignored)
    # `cargo test --workspace --bins` runs a bin without tests and passes: a target that came
    # from rust.workspace (not one a user named) and lists nothing has no item.
    return [plan for plan in plans if not (plan.problem is not None and plan.problem.empty
                                           and WORKSPACE_ORIGIN in plan.origin)]


def expand_workspace(rust: RustSettings, cargo: cargo_mod.Cargo) -> RustSettings:
    """``rust.workspace`` as targets: every workspace member's targets of the configured
    kinds (lib, each bin, each test, doc), minus ``exclude`` and what ``rust.targets`` already
    names, each marked with its origin so the evidence says where it came from."""
    if not rust.workspace:
        return rust
    try:
        workspace = cargo.metadata(None)
    except (ToolMissing, cargo_mod.CargoError):
        return rust  # discovery reports it, as for any target of this workspace
    taken = {(t.crate, t.kind, t.test) for t in rust.targets}
    origin = f"{WORKSPACE_ORIGIN} (" + ", ".join(rust.workspace) + ")"
    expanded = list(rust.targets)
    for name in sorted(workspace.packages):
        if name in rust.workspace_exclude:
            continue
        package = workspace.packages[name]
        for kind in rust.workspace:
            for target in package.of_kind(kind):
                if (name, kind, target) in taken or (name, None, target) in taken:
                    continue
                if kind == "test" and target in package.not_tested:
                    cargo.note(f"rust.workspace: {name}::{target} (test) is not run: its "
                               "manifest says test = false, so `cargo test --workspace "
                               "--tests` skips it too; name it in rust.targets to run it")
                    continue
                lacking = package.needs_features.get((kind, target))
                if lacking:
                    cargo.note(
                        f"rust.workspace: {name}::{target} ({kind}) is not run: it requires "
                        f"features {', '.join(lacking)}, not on by default, and `cargo test "
                        f"--workspace` skips it too; to run it, name it in rust.targets with "
                        f"features: [{', '.join(lacking)}]")
                if not lacking:
                    expanded.append(RustTarget(crate=name, test=target, kind=kind,
                                               origin=origin))
    return dataclasses.replace(rust, targets=tuple(expanded))


def location_problems(wanted: Sequence[Wanted], cargo: cargo_mod.Cargo) -> list[str]:
    """What ``cargo metadata`` alone shows is wrong with the wanted targets (an unknown crate
    or target, with the nearest names), before anything compiles; an ambiguous bare name
    raises :class:`ConfigError`. A workspace whose metadata cannot be read yields nothing
    here: the area reports that as the repository's failure."""
    plans = [BinaryPlan(w.crate, w.binary, w.features, w.origin, segment(w, wanted), w.tests,
                        manifest=w.manifest, named=w.named, asked_kind=w.kind) for w in wanted]
    found: list[str] = []
    for manifest in dict.fromkeys(plan.manifest for plan in plans):
        try:
            workspace = cargo.metadata(manifest or None)
        except (ToolMissing, cargo_mod.CargoError):
            continue
        for plan in plans:
            if plan.manifest == manifest:
                problem = _locate(plan, workspace, wanted).problem
                if problem is not None:
                    found.append(problem.message)
    return list(dict.fromkeys(found))


def _located(plans: list[BinaryPlan], manifest: str, cargo: cargo_mod.Cargo,
             wanted: Sequence[Wanted]) -> list[BinaryPlan]:
    """Resolve the plans of one manifest against its workspace (one ``cargo metadata``)."""
    try:
        workspace = cargo.metadata(manifest or None)
    except ToolMissing as exc:
        return _failed(plans, manifest, Problem(str(exc), harness=True))
    except cargo_mod.CargoError as exc:
        return _failed(plans, manifest, Problem(str(exc)))
    return [_locate(plan, workspace, wanted) if plan.manifest == manifest else plan
            for plan in plans]


def _failed(plans: list[BinaryPlan], manifest: str, problem: Problem) -> list[BinaryPlan]:
    return [dataclasses.replace(plan, problem=problem) if plan.manifest == manifest else plan
            for plan in plans]


def _locate(plan: BinaryPlan, workspace: cargo_mod.Workspace,
            wanted: Sequence[Wanted]) -> BinaryPlan:
    package = workspace.packages.get(plan.crate)
    if package is None:
        message = (f"{plan.origin}: no crate {plan.crate!r} in the Cargo workspace at "
                   f"{workspace.root}; {nearest(plan.crate, list(workspace.packages))}")
        if not plan.manifest:
            message += ("; a crate outside the workspace (like dioxus-desktop) needs "
                        "'manifest: <dir>/Cargo.toml' on its target")
        return dataclasses.replace(plan, problem=Problem(message))
    kinds = package.kinds_named(plan.binary)
    if plan.asked_kind is None and len(kinds) > 1:
        choices = " or ".join(f"kind: {k} ({KIND_TEXT[k].format(name=plan.binary)})"
                              for k in kinds)
        raise ConfigError(
            f"{plan.origin}: {plan.binary!r} is ambiguous in crate {plan.crate}: {choices}; "
            f"add the kind to the target (on the command line: "
            f"{' or '.join(f'{plan.crate}::{k}:{plan.binary}' for k in kinds)})")
    kind = plan.asked_kind or (kinds[0] if kinds else "")
    if not kind or plan.binary not in package.of_kind(kind):
        if kind == cargo_mod.DOC or (kind == cargo_mod.LIB and plan.binary == kind):
            message = f"{plan.origin}: crate {plan.crate} has no library, so no {kind} tests"
        else:
            names = package.of_kind(kind) if kind else package.binaries()
            what = f"{kind} target" if kind else "test binary"
            message = (f"{plan.origin}: crate {plan.crate} has no {what} {plan.binary!r}; "
                       f"{nearest(plan.binary, names)}")
        return dataclasses.replace(plan, problem=Problem(message))
    plan = dataclasses.replace(plan, manifest_dir=str(package.manifest_dir),
                               version=package.version, kind=kind,
                               libtest=(kind, plan.binary) not in package.no_harness)
    if len(kinds) > 1:  # the name alone would be ambiguous: the node id says the kind
        mine = next(w for w in wanted if (w.crate, w.binary, w.kind, w.features)
                    == (plan.crate, plan.binary, plan.asked_kind, plan.features))
        plan = dataclasses.replace(plan, segment=segment(mine, wanted, kind))
    return plan


def _built(plan: BinaryPlan, build: cargo_mod.Build) -> BinaryPlan:
    plan = dataclasses.replace(plan, build_command=build.command)
    executable = build.executables.get(plan.selector)
    if executable is None and build.result is not None and build.result.timed_out:
        message = (f"{plan.target} was not built: cargo did not finish within "
                   f"rust.build_timeout ({plan.origin}); see its last lines below")
        return dataclasses.replace(plan, problem=Problem(message, build.failure(plan.selector),
                                                         harness=True))
    if executable is None:
        message = (f"{plan.target} does not compile (features: {plan.features_label}); "
                   f"see the compiler output below ({plan.origin})")
        return dataclasses.replace(plan, problem=Problem(message, build.failure(plan.selector)))
    return dataclasses.replace(plan, executable=executable)


def _with_env(plans: list[BinaryPlan], indexes: list[int], cargo: cargo_mod.Cargo, crate: str,
              features: tuple[str, ...], manifest: str) -> None:
    """Ask cargo once for the run environment of every built binary of the group."""
    if not indexes:
        return
    selectors = list(dict.fromkeys(plans[i].selector for i in indexes))
    try:
        envs = cargo.capture_env(crate, selectors, features, manifest=manifest or None)
        why = "cargo gave no binary to the runner (a runner of your own?)"
    except (cargo_mod.CargoError, ToolMissing, OSError, ValueError) as exc:
        envs, why = {}, str(exc)
    for i in indexes:
        plan = plans[i]
        found = envs.get(plan.executable or "")
        if found is None:
            # Never silently different: the plan says the environment is cargo's own guess.
            plans[i] = dataclasses.replace(plan, env_source=f"not asked from cargo: {why}",
                                           env_set=_fallback_env(plan))
        else:
            plans[i] = dataclasses.replace(plan, env_set=found.set, env_unset=found.unset,
                                           cwd=found.cwd, env_source="cargo")


def _fallback_env(plan: BinaryPlan) -> dict[str, str]:
    return {"CARGO_MANIFEST_DIR": plan.manifest_dir, "CARGO_PKG_NAME": plan.crate,
            "CARGO_PKG_VERSION": plan.version}


def _listed(plan: BinaryPlan, ignored: str) -> BinaryPlan:
    if plan.executable is None:
        return plan
    if not plan.libtest:
        # Not asked to list: it would run the program (its tests) at collection time.
        if plan.named:
            message = (f"{plan.origin}: {plan.target} has harness = false: cargo runs it as "
                       "one program, with no test names to select; drop its tests: (it runs "
                       "as one item)")
            return dataclasses.replace(plan, problem=Problem(message))
        return plan
    env = plan.run_env()
    try:
        listed = list_tests([plan.executable], env.apply(), env.cwd)
        only = (list_tests([plan.executable], env.apply(), env.cwd, ignored=True)
                if ignored == "only" else ())
    except cargo_mod.CargoError as exc:
        return dataclasses.replace(plan, problem=Problem(str(exc)))
    return _zero_tests(dataclasses.replace(plan, listed=listed, ignored=only), ignored)


def _doc_listed(plan: BinaryPlan, cargo: cargo_mod.Cargo, ignored: str) -> BinaryPlan:
    argv = cargo.doc_argv(plan.crate, plan.features, plan.manifest or None, ())
    plan = dataclasses.replace(plan, build_command=" ".join(argv), env_source="cargo",
                               cwd=str(cargo.cwd))
    env = cargo_mod.clean_env()
    try:
        listed = list_tests(argv, env, str(cargo.cwd), doc=True, timeout=cargo.timeout)
        only = (list_tests(argv, env, str(cargo.cwd), ignored=True, doc=True,
                                     timeout=cargo.timeout)
                if ignored == "only" else ())
    except ToolMissing as exc:
        return dataclasses.replace(plan, problem=Problem(str(exc), harness=True))
    except cargo_mod.CargoError as exc:
        return dataclasses.replace(plan, problem=Problem(f"{plan.target}: {exc}"))
    return _zero_tests(dataclasses.replace(plan, listed=listed, ignored=only), ignored)


def _zero_tests(plan: BinaryPlan, ignored: str) -> BinaryPlan:
    if plan.listed and (ignored != "only" or plan.ignored or plan.named):
        return plan
    why = "the binary lists none" if not plan.listed else "none is #[ignore]d (rust.ignored: only)"
    message = (f"{plan.origin}: {plan.target} selects zero tests: {why} "
               f"(features: {plan.features_label}); a target that runs nothing cannot pass")
    return dataclasses.replace(plan, problem=Problem(message, empty=not plan.listed))


def list_tests(argv: Sequence[str], env: Mapping[str, str], cwd: str, *, ignored: bool = False,
               doc: bool = False, timeout: float = LIST_TIMEOUT) -> tuple[str, ...]:
    """The tests (only the ``#[ignore]``d ones with ``ignored``) that ``argv`` (a test
    binary, or ``cargo test --doc ... --``) lists, in libtest's order."""
    argv = [*argv, "--list", "--format", "terse", *(["--ignored"] if ignored else [])]
    result = proc.run(argv, cwd=cwd, env=dict(env), timeout=timeout,
                      max_output=64 << 20)
    if not result.ok:
        raise cargo_mod.CargoError(f"`{result.command}` failed ({result.describe_exit()}): "
                         f"{libtest.one_line(cargo_mod.last_lines(result.stderr))}")
    return libtest.parse_list(result.stdout, spaces=doc)
