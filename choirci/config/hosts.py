"""The ``host_checks:`` section of choirci.yaml -> one frozen :class:`HostChecks`.

Defaults follow the grind host contract (CONTRACT.md §5): units ``hypervisor``,
``container@sandbox-live``, ``container@sandbox-dev`` (``caddy`` optional), ports 9090/8080/8081,
sandboxes ``live`` on :8080 and ``dev`` on :8081, the sandbox's forbidden provider keys. Every
value is overridable; an omitted key keeps its default, an empty list turns a check off.
Errors are the config module's one-line ``file:line: host_checks.key: ...`` messages.

Release promotion (CONTRACT §3, §5 items 1, 5, 7, 9, §8.6): ``manifest`` (a release .env or
.json, relative to the config file; unset = off) says which store paths must run;
``manifest_units`` / ``manifest_processes`` say which process runs each closure;
``manifest_gc_roots`` is ``fail`` (default), ``warn`` or ``off`` for promoted paths that no GC
root protects. ``workspace`` (default ``/opt/choiros/workspace``), ``workspace_branch``,
``oneshot_units`` and ``secret_modes`` cover the promote preconditions and sops-nix files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from choirci.config import presets
from choirci.config.presets import PRESET_NAMES, REBOOT_POLICIES, Credential

if TYPE_CHECKING:
    from choirci.config.reader import Reader as _Reader

# The sandbox's own list (sandbox/src/main.rs) plus the platform-only secrets (CONTRACT §5).
FORBIDDEN_ENV = (
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "ZAI_API_KEY", "KIMI_API_KEY", "GOOGLE_API_KEY",
    "MISTRAL_API_KEY", "AWS_BEARER_TOKEN_BEDROCK", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN", "MOONSHOT_API_KEY", "RESEND_API_KEY", "TAVILY_API_KEY",
    "BRAVE_API_KEY", "EXA_API_KEY", "FLAKEHUB_AUTH_TOKEN",
)
# Name shapes no sandbox may carry either (GEMINI_API_KEY, GROQ_API_KEY, ANTHROPIC_AUTH_TOKEN,
# OPENROUTER_API_KEY, ...): shell-style globs, matched on the host. allowed_env wins over them.
FORBIDDEN_PATTERNS = (
    "*_API_KEY", "*_AUTH_TOKEN", "*_ACCESS_TOKEN", "*_SECRET_ACCESS_KEY", "*_SESSION_TOKEN",
    "OPENAI_*", "ANTHROPIC_*", "GEMINI_*", "GOOGLE_*", "GROQ_*", "OPENROUTER_*", "MISTRAL_*",
    "COHERE_*", "DEEPSEEK_*", "XAI_*", "TOGETHER_*", "PERPLEXITY_*", "ZAI_*", "KIMI_*",
    "MOONSHOT_*", "AZURE_OPENAI_*", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_*",
)
ALLOWED_ENV = ("CHOIR_PROVIDER_GATEWAY_*",)
REQUIRED_ENV = ("CHOIR_SANDBOX_ID", "CHOIR_SANDBOX_ROLE", "CHOIR_SANDBOX_USER_ID")
# systemd UnitFileState values that still mean "started at boot"; NixOS links its units.
ENABLED_STATES = (
    "enabled", "enabled-runtime", "linked", "linked-runtime", "static", "indirect", "generated",
    "alias",
)
GC_ROOT_POLICIES = ("fail", "warn", "off")
SECRET_MODES = {"/var/lib/sops-nix/key.txt": "600", "/run/secrets/rendered/*": "400"}
SIZE = re.compile(r"^\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>%|B|K|KiB|M|MiB|G|GiB|T|TiB)?\s*$")
UNIT_BYTES = {"B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


@dataclass(frozen=True)
class Threshold:
    """Minimum free space: an absolute byte count, or a percentage of the total."""

    text: str
    min_bytes: int = 0
    min_percent: float = 0.0

    def breached(self, free: int, total: int) -> bool:
        if self.min_percent:
            return total > 0 and free * 100.0 / total < self.min_percent
        return free < self.min_bytes


@dataclass(frozen=True)
class Sandbox:
    role: str
    url: str
    instance_role: str  # what /health must report when it reports a role at all


@dataclass(frozen=True)
class PortCheck:
    port: int
    container: str | None = None  # NixOS container to look inside (nixos-container run)


@dataclass(frozen=True)
class HostChecks:
    configured: bool = False  # the file has a host_checks: section (turns the hosts area on)
    preset: str = "seed"  # seed | node (choirci.config.presets): the defaults below, or today's nodes
    units: tuple[str, ...] = ("hypervisor", "container@sandbox-live", "container@sandbox-dev")
    optional_units: tuple[str, ...] = ("caddy",)
    enabled_states: tuple[str, ...] = ENABLED_STATES
    ports: tuple[PortCheck, ...] = (PortCheck(9090), PortCheck(8080), PortCheck(8081))
    hypervisor_url: str = "http://127.0.0.1:9090"
    sandboxes: tuple[Sandbox, ...] = (
        Sandbox("live", "http://127.0.0.1:8080", "live"),
        Sandbox("dev", "http://127.0.0.1:8081", "dev"),
    )
    require_instance_role: bool = False
    public_paths: tuple[str, ...] = ("/login", "/register", "/recovery")
    protected_paths: tuple[str, ...] = ("/health", "/admin/sandboxes", "/dev/health", "/api/x")
    domains: tuple[str, ...] = ()
    apex_redirects: Mapping[str, str] = field(default_factory=dict)
    domain_scheme: str = "https"
    domain_address: str | None = None
    domain_port: int | None = None
    boot_allow: tuple[str, ...] = ()  # units accepted as "starts at boot" though nothing wants them
    max_restarts: int = 0  # automatic restarts (NRestarts) a unit may have had: more is a crash loop
    sandbox_process: str = "sandbox"
    hypervisor_process: str = "hypervisor"  # whose provider keys the sandbox must not hold; "" = off
    forbidden_env: tuple[str, ...] = FORBIDDEN_ENV + FORBIDDEN_PATTERNS
    allowed_env: tuple[str, ...] = ALLOWED_ENV
    required_env: tuple[str, ...] = REQUIRED_ENV
    bin_dir: str = "/opt/choiros/bin"
    binaries: Mapping[str, str | None] = field(
        default_factory=lambda: {"sandbox": None, "hypervisor": None}
    )
    store_dir: str = "/nix/store"
    disk: Mapping[str, Threshold] = field(
        default_factory=lambda: {"/": parse_threshold("1GiB"), "/nix/store": parse_threshold("1GiB")}
    )
    memory_available: Threshold = Threshold("256MiB", min_bytes=256 << 20)
    nixos_generations: int = 2
    http_timeout: float = 10.0
    connect_timeout: int = 10
    server_alive_interval: int = 5
    server_alive_count_max: int = 3
    command_timeout: float = 60.0
    manifest: str | None = None  # as written; resolved against the config file's directory
    manifest_units: Mapping[str, str] = field(default_factory=lambda: {"hypervisor": "hypervisor"})
    manifest_processes: Mapping[str, str] = field(
        default_factory=lambda: {"sandbox": "sandbox", "hypervisor": "hypervisor"}
    )
    manifest_gc_roots: str = "fail"
    # A Nix public key (NAME:BASE64): every release path on the host must carry a valid
    # signature by it (choirci release sign on grind). None: not checked.
    manifest_signing_key: str | None = None
    workspace: tuple[str, ...] = ("/opt/choiros/workspace",)
    workspace_branch: str = "main"
    oneshot_units: tuple[str, ...] = ("choiros-flakehub-login",)
    secret_modes: Mapping[str, str] = field(default_factory=lambda: dict(SECRET_MODES))
    system: str | None = None  # the NixOS toplevel store path /run/current-system must be
    reboot_pending: str = "fail"  # /run/booted-system's kernel or initrd differ: fail | warn | off
    unit_templates: tuple[str, ...] = ()  # 'cloud-hypervisor@': every instance must be active
    unit_environment_files: Mapping[str, str] = field(default_factory=dict)
    credentials: Mapping[str, Credential] = field(default_factory=dict)


KEYS = tuple(k for k in HostChecks.__dataclass_fields__ if k != "configured")


def preset_defaults(preset: str) -> HostChecks:
    """The defaults of ``host_checks.preset`` (``seed``: the class defaults)."""
    if preset == "seed":
        return HostChecks()
    values = presets.node_defaults()
    values["ports"] = tuple(PortCheck(port) for port in values["ports"])
    values["sandboxes"] = tuple(Sandbox(role, url, role) for role, url in values["sandboxes"].items())
    return replace(HostChecks(), preset=preset, **values)


def parse_threshold(text: str) -> Threshold:
    """``"10%"``, ``"512MiB"``, ``"2G"`` or a bare number of MiB -> Threshold; ValueError if not."""
    match = SIZE.match(text)
    if not match:
        raise ValueError(text)
    number, unit = float(match["n"]), match["unit"] or "MiB"
    if unit == "%":
        if not 0 < number < 100:
            raise ValueError(text)
        return Threshold(text.strip(), min_percent=number)
    return Threshold(text.strip(), min_bytes=int(number * UNIT_BYTES[unit[0]]))


def parse(r: _Reader, value: Any) -> HostChecks:
    table = r.mapping(value, "host_checks", KEYS)
    d = preset_defaults(_choice(r, table, "preset", PRESET_NAMES, "seed"))
    p = "host_checks."
    sandbox_process = _string(r, table, "sandbox_process", d.sandbox_process)
    return HostChecks(
        configured=value is not None,
        preset=d.preset,
        units=_list(r, table, "units", d.units),
        optional_units=_list(r, table, "optional_units", d.optional_units),
        enabled_states=_list(r, table, "enabled_states", d.enabled_states),
        ports=_ports(r, table.get("ports"), d.ports),
        hypervisor_url=_url(r, table.get("hypervisor_url"), p + "hypervisor_url", d.hypervisor_url),
        sandboxes=_sandboxes(r, table.get("sandboxes"), d.sandboxes),
        require_instance_role=_bool(r, table, "require_instance_role", d.require_instance_role),
        public_paths=_paths(r, table, "public_paths", d.public_paths),
        protected_paths=_paths(r, table, "protected_paths", d.protected_paths),
        domains=_list(r, table, "domains", d.domains),
        apex_redirects=_apex(r, table.get("apex_redirects")),
        domain_scheme=_choice(r, table, "domain_scheme", ("http", "https"), d.domain_scheme),
        domain_address=r.optional_string(table.get("domain_address"), p + "domain_address"),
        domain_port=_port_or_none(r, table.get("domain_port"), p + "domain_port"),
        boot_allow=_list(r, table, "boot_allow", d.boot_allow),
        max_restarts=_count(r, table, "max_restarts", d.max_restarts),
        sandbox_process=sandbox_process or d.sandbox_process,
        hypervisor_process=_string(r, table, "hypervisor_process", d.hypervisor_process),
        forbidden_env=_list(r, table, "forbidden_env", d.forbidden_env),
        allowed_env=_list(r, table, "allowed_env", d.allowed_env),
        required_env=_list(r, table, "required_env", d.required_env),
        bin_dir=r.optional_string(table.get("bin_dir"), p + "bin_dir") or d.bin_dir,
        binaries=_binaries(r, table, d.binaries),
        store_dir=r.optional_string(table.get("store_dir"), p + "store_dir") or d.store_dir,
        disk=_disk(r, table, d.disk),
        memory_available=_threshold(r, table.get("memory_available"),
                                    p + "memory_available", d.memory_available, percent=False),
        nixos_generations=_count(r, table, "nixos_generations", d.nixos_generations),
        http_timeout=r.number(table.get("http_timeout"), p + "http_timeout", d.http_timeout),
        connect_timeout=_count(r, table, "connect_timeout", d.connect_timeout, least=1),
        server_alive_interval=_count(r, table, "server_alive_interval", d.server_alive_interval, least=1),
        server_alive_count_max=_count(r, table, "server_alive_count_max", d.server_alive_count_max, least=1),
        command_timeout=r.number(table.get("command_timeout"), p + "command_timeout", d.command_timeout),
        manifest=r.optional_string(table.get("manifest"), p + "manifest"),
        manifest_units=_names(r, table, "manifest_units", d.manifest_units),
        manifest_processes=_names(r, table, "manifest_processes", {
            **d.manifest_processes, **({"sandbox": sandbox_process} if sandbox_process else {})}),
        manifest_gc_roots=_choice(r, table, "manifest_gc_roots", GC_ROOT_POLICIES,
                                  d.manifest_gc_roots),
        manifest_signing_key=_nix_public_key(r, table.get("manifest_signing_key"),
                                             p + "manifest_signing_key"),
        workspace=_absolute(r, table, "workspace", d.workspace),
        workspace_branch=r.optional_string(table.get("workspace_branch"), p + "workspace_branch")
        or d.workspace_branch,
        oneshot_units=_list(r, table, "oneshot_units", d.oneshot_units),
        secret_modes=presets.modes(r, table, d.secret_modes),
        system=presets.system_path(r, table.get("system")),
        reboot_pending=_choice(r, table, "reboot_pending", REBOOT_POLICIES, d.reboot_pending),
        unit_templates=presets.templates(r, table, d.unit_templates),
        unit_environment_files=presets.env_files(r, table, d.unit_environment_files),
        credentials=presets.credentials(r, table, d.credentials),
    )


def _list(r: _Reader, table: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    # An explicit empty list turns a check off; only an absent key means "default".
    return r.strings(table[key], f"host_checks.{key}") if key in table else default


def _paths(r: _Reader, table: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    paths = _list(r, table, key, default)
    for index, path in enumerate(paths):
        if not path.startswith("/"):
            raise r.fail(f"host_checks.{key}[{index}]", f"expected a URL path like '/login', got {path!r}")
    return paths


def _bool(r: _Reader, table: dict[str, Any], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise r.fail(f"host_checks.{key}", f"expected true or false, got {value!r}")
    return value


def _count(r: _Reader, table: dict[str, Any], key: str, default: int, least: int = 0) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise r.fail(f"host_checks.{key}", f"expected a whole number >= {least}, got {value!r}")
    return value


def _string(r: _Reader, table: dict[str, Any], key: str, default: str) -> str:
    value = table.get(key, default)
    return "" if value in (None, "") else _process(r, value, f"host_checks.{key}")


def _process(r: _Reader, value: Any, path: str) -> str:
    """A process name as ``pgrep -x`` matches it: the kernel keeps only 15 characters."""
    name = r.string(value, path)
    if len(name) > 15:
        raise r.fail(path, f"process names are at most 15 characters (the kernel's comm), got {name!r}; "
                     f"use {name[:15]!r}")
    return name


def _choice(r: _Reader, table: dict[str, Any], key: str, allowed: tuple[str, ...], default: str) -> str:
    value = table.get(key, default)
    if value not in allowed:
        raise r.fail(f"host_checks.{key}", f"expected one of {', '.join(allowed)}, got {value!r}")
    return str(value)


def _url(r: _Reader, value: Any, path: str, default: str) -> str:
    if value is None:
        return default
    url = r.string(value, path)
    if not re.match(r"^https?://[^/\s]+$", url.rstrip("/")):
        raise r.fail(path, f"expected 'http://HOST:PORT' (no path), got {url!r}")
    return url.rstrip("/")


def _port_or_none(r: _Reader, value: Any, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise r.fail(path, f"expected a TCP port 1-65535, got {value!r}")
    return value


def _ports(r: _Reader, value: Any, default: tuple[PortCheck, ...]) -> tuple[PortCheck, ...]:
    if value is None:
        return default
    if not isinstance(value, list):
        raise r.fail("host_checks.ports", "expected a list of ports (9090 or {port: 8080, container: sandbox-live})")
    out = []
    for index, item in enumerate(value):
        path = f"host_checks.ports[{index}]"
        spec = item if isinstance(item, dict) else {"port": item}
        spec = r.mapping(spec, path, ("port", "container"))
        port = _port_or_none(r, spec.get("port"), f"{path}.port")
        if port is None:
            raise r.fail(path, "missing 'port:'")
        out.append(PortCheck(port, r.optional_string(spec.get("container"), f"{path}.container")))
    return tuple(out)


def _sandboxes(r: _Reader, value: Any, default: tuple[Sandbox, ...]) -> tuple[Sandbox, ...]:
    if value is None:
        return default
    table = r.mapping(value, "host_checks.sandboxes", None)
    out = []
    for role, spec in table.items():
        path = f"host_checks.sandboxes.{role}"
        r.name(role, path)
        spec = r.mapping({"url": spec} if isinstance(spec, str) else spec, path, ("url", "instance_role"))
        if "url" not in spec:
            raise r.fail(path, "missing 'url:' (e.g. http://127.0.0.1:8080)")
        url = _url(r, spec["url"], f"{path}.url", "")
        expected = r.optional_string(spec.get("instance_role"), f"{path}.instance_role") or role
        out.append(Sandbox(role, url, expected))
    return tuple(out)


def _apex(r: _Reader, value: Any) -> dict[str, str]:
    table = r.mapping(value, "host_checks.apex_redirects", None)
    return {apex: r.string(target, f"host_checks.apex_redirects.{apex}") for apex, target in table.items()}


def _binaries(
    r: _Reader, table: dict[str, Any], default: Mapping[str, str | None]
) -> Mapping[str, str | None]:
    if "binaries" not in table:
        return default
    value = table["binaries"]
    if isinstance(value, list):
        value = {name: None for name in r.strings(value, "host_checks.binaries")}
    spec = r.mapping(value, "host_checks.binaries", None)
    out: dict[str, str | None] = {}
    for name, expected in spec.items():
        path = f"host_checks.binaries.{name}"
        r.name(name, path)
        expected = r.optional_string(expected, path)
        if expected and not (expected.startswith("/") or re.match(r"^sha256:[0-9a-f]{64}$", expected)):
            raise r.fail(path, f"expected a store path or 'sha256:<64 hex>', got {expected!r}")
        out[name] = expected
    return out


def _threshold(r: _Reader, value: Any, path: str, default: Threshold, *, percent: bool) -> Threshold:
    if value is None:
        return default
    try:
        threshold = parse_threshold(str(value))
    except ValueError:
        raise r.fail(path, f"expected a size like '512MiB', '2GiB' or '10%', got {value!r}") from None
    if threshold.min_percent and not percent:
        raise r.fail(path, f"expected an absolute size like '512MiB', got {value!r}")
    return threshold


def _disk(r: _Reader, table: dict[str, Any], default: Mapping[str, Threshold]) -> Mapping[str, Threshold]:
    if "disk" not in table:
        return default
    spec = r.mapping(table["disk"], "host_checks.disk", None)
    out = {}
    for mount, value in spec.items():
        path = f"host_checks.disk.{mount}"
        if not str(mount).startswith("/"):
            raise r.fail(path, f"expected an absolute path as key, got {mount!r}")
        out[str(mount)] = _threshold(r, value, path, Threshold(""), percent=True)
    return out


def _absolute(r: _Reader, table: dict[str, Any], key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    paths = _list(r, table, key, default)
    for index, path in enumerate(paths):
        if not path.startswith("/"):
            raise r.fail(f"host_checks.{key}[{index}]", f"expected an absolute path, got {path!r}")
    return paths


def _names(r: _Reader, table: dict[str, Any], key: str, default: Mapping[str, str]) -> Mapping[str, str]:
    """closure name -> unit or process name; ``{}`` (or null) turns the check off."""
    if key not in table:
        return default
    spec = r.mapping(table[key], f"host_checks.{key}", None)
    return {r.name(str(closure), f"host_checks.{key}.{closure}"):
            r.string(value, f"host_checks.{key}.{closure}") for closure, value in spec.items()}


_NIX_PUBLIC_KEY = re.compile(r"^[A-Za-z0-9._+-]+:[A-Za-z0-9+/]{43}=$")


def _nix_public_key(r: _Reader, value: Any, path: str) -> str | None:
    key = r.optional_string(value, path)
    if key is not None and not _NIX_PUBLIC_KEY.match(key.strip()):
        raise r.fail(path, f"expected a Nix public key NAME:BASE64 (as `nix key "
                     f"convert-secret-to-public` prints it), got {key.strip()[:40]!r}")
    return key.strip() if key is not None else None
