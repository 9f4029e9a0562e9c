"""choirci.yaml (or ``[tool.choirci]`` in pyproject.toml) -> one frozen, validated Config.

Loaded once per run. Every problem is a :class:`~choirci.errors.ConfigError` whose message
is one line: ``file:line: key.path: what is wrong; what is allowed``.

This package assembles the sections: ``rust`` (the ``rust:`` section) and ``hosts`` (the
``host_checks:`` section) parse theirs with ``reader`` (the typed reader) over ``yamlpos``
(YAML with line numbers). Config sits just above the base modules (``errors``): it imports
no adapter, area or evidence module, and none of its sections imports this package.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choirci.config.hosts import HostChecks
from choirci.config.hosts import parse as _host_checks
from choirci.config.reader import Reader as _Reader
from choirci.config.rust import RustSettings
from choirci.config.rust import parse as _rust
from choirci.config.yamlpos import Located, load_pyproject, load_yaml
from choirci.config.yamlpos import describe as _describe
from choirci.errors import ConfigError

CONFIG_NAMES = ("choirci.yaml", "choirci.yml")
INSTALLABLE = re.compile(r"^(?P<flake>[^#\s]+)#(?P<attr>[A-Za-z0-9_\-.'\"]+)$")
HOST_SPEC = re.compile(r"^(local|ssh|paramiko|docker|podman|kubectl|salt|ansible|winrm|lxc)://")


@dataclass(frozen=True)
class Closure:
    name: str
    installable: str

    @property
    def flake(self) -> str:
        return self.installable.split("#", 1)[0]


@dataclass(frozen=True)
class LoopStep:
    name: str
    argv: tuple[str, ...]
    develop: str | None = None
    timeout: float = 1800.0

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass(frozen=True)
class NixSettings:
    binary: str = "nix"
    extra_args: tuple[str, ...] = ()
    build_timeout: float = 3600.0
    missing: str = "error"  # "error" | "skip"
    lock_timeout: float = 1800.0
    lock_path: str | None = None


@dataclass(frozen=True)
class ReleaseSettings:
    domain: str | None = None
    prompt_url: str | None = None
    prompt_objective: str = "choirci release smoke: reply with OK"
    prompt_timeout: float = 120.0
    nix_signing_key: str | None = None  # a secret key file or env:NAME (choirci release sign)
    ssh_signing_key: str | None = None  # an SSH private key file or env:NAME


@dataclass(frozen=True)
class Config:
    path: Path | None
    root: Path
    closures: tuple[Closure, ...] = ()
    loops: tuple[LoopStep, ...] = ()
    rust: RustSettings = field(default_factory=RustSettings)
    hosts: Mapping[str, str] = field(default_factory=dict)
    host_checks: HostChecks = field(default_factory=HostChecks)
    gates_dir: Path | None = None
    evidence_dir: Path = Path("evidence")
    evidence_where: str = ""  # "choirci.yaml:7: evidence" when the file set it, for messages
    release: ReleaseSettings = ReleaseSettings()
    redact: tuple[str, ...] = ()
    nix: NixSettings = NixSettings()

    def closure(self, name: str) -> Closure:
        for closure in self.closures:
            if closure.name == name:
                return closure
        known = ", ".join(c.name for c in self.closures) or "none configured"
        raise ConfigError(f"unknown closure {name!r}; known closures: {known}")


# --------------------------------------------------------------------------- discovery


def find_config(start: Path) -> Path | None:
    """The nearest choirci.yaml, or pyproject.toml with [tool.choirci], at or above ``start``."""
    for directory in (start, *start.parents):
        for name in CONFIG_NAMES:
            if (directory / name).is_file():
                return directory / name
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "[tool.choirci" in pyproject.read_text(errors="replace"):
            return pyproject
    return None


def load(path: Path) -> Config:
    if not path.exists():
        raise ConfigError(f"{path}: no such config file; pass an existing choirci.yaml")
    if path.name == "pyproject.toml":
        located = load_pyproject(path)
        if located is None:
            raise ConfigError(f"{path}: has no [tool.choirci] table; add one or use choirci.yaml")
    else:
        located = load_yaml(path)
    return parse(located, root=path.resolve().parent, path=path.resolve())


# --------------------------------------------------------------------------- parsing


TOP_KEYS = (
    "closures", "loops", "rust", "nix", "hosts", "host_checks",
    "gates", "evidence", "release", "redact",
)


def parse(located: Located, root: Path, path: Path | None = None) -> Config:
    r = _Reader(located)
    top = r.mapping(located.data, "", TOP_KEYS)
    sections: dict[str, Callable[[_Reader, Any], Any]] = {
        "closures": _closures, "loops": _loops,
        "rust": lambda reader, value: _rust(reader, value, root),  # manifests are relative
        "nix": _nix, "hosts": _hosts, "release": _release, "host_checks": _host_checks,
    }
    parsed = {key: fn(r, top.get(key)) for key, fn in sections.items()}
    gates = r.optional_string(top.get("gates"), "gates")
    if gates and not (root / gates).is_dir():
        # Known now, not after the run: a typo would silently mean "no gates evaluated".
        raise r.fail("gates", f"no such directory {root / gates}; create it or remove the key "
                     "to use choirci's bundled gates")
    evidence = r.optional_string(top.get("evidence"), "evidence") or "evidence"
    return Config(
        path=path,
        root=root,
        gates_dir=(root / gates) if gates else None,
        evidence_dir=root / evidence,
        evidence_where=(f"{located.where('evidence')}: evidence"
                        if top.get("evidence") is not None else ""),
        redact=r.strings(top.get("redact"), "redact"),
        **parsed,
    )


def _closures(r: _Reader, value: Any) -> tuple[Closure, ...]:
    table = r.mapping(value, "closures", None)
    out = []
    for name, installable in table.items():
        path = f"closures.{name}"
        r.name(name, path)
        if not isinstance(installable, str) or not INSTALLABLE.match(installable):
            got = installable if isinstance(installable, str) else _describe(installable)
            raise r.fail(path, f"expected 'path#attr' (e.g. './sandbox#sandbox'), got {got!r}")
        out.append(Closure(name=name, installable=installable))
    return tuple(out)


def _loops(r: _Reader, value: Any) -> tuple[LoopStep, ...]:
    table = r.mapping(value, "loops", None)
    out = []
    for name, spec in table.items():
        path = f"loops.{name}"
        r.name(name, path)
        if isinstance(spec, (str, list)):
            spec = {"run": spec}
        spec = r.mapping(spec, path, ("run", "develop", "timeout"))
        if "run" not in spec:
            raise r.fail(path, "missing 'run:'; give the command to run")
        out.append(
            LoopStep(
                name=name,
                argv=r.argv(spec["run"], f"{path}.run"),
                develop=r.optional_string(spec.get("develop"), f"{path}.develop"),
                timeout=r.number(spec.get("timeout"), f"{path}.timeout", 1800.0),
            )
        )
    return tuple(out)


def _nix(r: _Reader, value: Any) -> NixSettings:
    keys = ("binary", "extra_args", "build_timeout", "missing", "lock_timeout", "lock_path")
    table = r.mapping(value, "nix", keys)
    missing = table.get("missing", "error")
    if missing not in ("error", "skip"):
        raise r.fail("nix.missing", f"expected 'error' or 'skip', got {missing!r}")
    return NixSettings(
        binary=r.optional_string(table.get("binary"), "nix.binary") or "nix",
        extra_args=r.strings(table.get("extra_args"), "nix.extra_args"),
        build_timeout=r.number(table.get("build_timeout"), "nix.build_timeout", 3600.0),
        missing=missing,
        lock_timeout=r.number(table.get("lock_timeout"), "nix.lock_timeout", 1800.0),
        lock_path=r.optional_string(table.get("lock_path"), "nix.lock_path"),
    )


def _hosts(r: _Reader, value: Any) -> dict[str, str]:
    table = r.mapping(value, "hosts", None)
    out = {}
    for name, spec in table.items():
        path = f"hosts.{name}"
        r.name(name, path)
        spec = r.string(spec, path)
        if not HOST_SPEC.match(spec):
            raise r.fail(
                path,
                f"expected a testinfra host spec like 'ssh://user@host' or 'local://', got {spec!r}",
            )
        out[name] = spec
    return out


def _release(r: _Reader, value: Any) -> ReleaseSettings:
    keys = ("domain", "prompt_url", "prompt_objective", "prompt_timeout", "nix_signing_key",
            "ssh_signing_key")
    table = r.mapping(value, "release", keys)
    prompt_url = r.optional_string(table.get("prompt_url"), "release.prompt_url")
    if prompt_url is not None and not re.match(r"^https?://[^/\s]+", prompt_url):
        raise r.fail(
            "release.prompt_url",
            f"expected the sandbox base URL like 'http://127.0.0.1:8080', got {prompt_url!r}",
        )
    return ReleaseSettings(
        domain=r.optional_string(table.get("domain"), "release.domain"),
        prompt_url=prompt_url,
        prompt_objective=r.optional_string(
            table.get("prompt_objective"), "release.prompt_objective"
        )
        or ReleaseSettings.prompt_objective,
        prompt_timeout=r.number(table.get("prompt_timeout"), "release.prompt_timeout", 120.0),
        nix_signing_key=r.optional_string(table.get("nix_signing_key"), "release.nix_signing_key"),
        ssh_signing_key=r.optional_string(table.get("ssh_signing_key"), "release.ssh_signing_key"),
    )


def resolve(explicit: str | None, start: Path) -> Config:
    """CLI option > $CHOIRCI_CONFIG > nearest config file at or above ``start``."""
    chosen = explicit or os.environ.get("CHOIRCI_CONFIG")
    if chosen:
        return load(Path(chosen))
    found = find_config(start)
    if found is None:
        raise ConfigError(
            f"no choirci.yaml found in {start} or above; create one (see README 'Config') "
            "or pass --choirci-config PATH"
        )
    return load(found)
