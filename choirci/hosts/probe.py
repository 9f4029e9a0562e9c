"""Shell commands the host checks run on the target, and parsers for what they print.

pytest-free and testinfra-free: each ``*_command`` returns a POSIX sh command string (values
quoted with :func:`shlex.quote`), each ``parse_*`` turns the output into a small dataclass.
Only tools present on a stock NixOS or Debian host are used: ``systemctl``, ``ss``, ``curl``,
``df``, ``awk``, ``tr``, ``pgrep``, ``readlink``, ``sha256sum``, ``stat``; ``nix-store`` and
``git`` where a check needs them.

Formats:

* ``systemctl show -p A,B``: ``Key=Value`` lines.
* ``ss -Hltn``: ``State Recv-Q Send-Q Local:Port Peer:Port``; IPv6 locals look like ``[::]:80``.
* curl: ``-i`` output (status line, headers, blank line, body) followed by our
  ``\\n@@CHOIRCI@@<http_code>`` trailer, so the status never depends on parsing headers.
* ``df -Pk PATH``: a header, then ``fs 1024-blocks used available capacity% mountpoint``.
* sandbox environ scan: ``PID n``, then ``FORBIDDEN K``/``ALLOWED K``/``MISSING K``/
  ``HOLDS K HVKEY``/``ENFORCE on|off|unmanaged``/``ROLE v``/``UNREADABLE`` lines, then
  ``HVCOUNT n`` and ``DONE``. Values are compared on the host by awk and never printed (also
  the hypervisor's provider keys, read from its environ), so no secret crosses the wire.
* every probe that uses a tool beyond POSIX sh checks it first (:func:`need`: exit 127 and
  ``choirci: 'TOOL' is not installed on the host``), and none loses an exit status in a
  pipeline or a ``for`` loop (``pgrep`` exit > 1 is exit 3; a failed step exits 4).

Probes of a promoted host (running executables, store paths, GC roots, the workspace
checkout, file modes) are in :mod:`choirci.hosts.promoted`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

UNIT_PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "Result", "MainPID",
              "NRestarts", "ExecMainStatus", "ExecMainCode", "WantedBy", "RequiredBy", "UpheldBy",
              "TriggeredBy")
# Reverse dependencies that start a unit without anyone typing "systemctl start".
WANTED_BY = ("WantedBy", "RequiredBy", "UpheldBy", "TriggeredBy")
TRAILER = "@@CHOIRCI@@"


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class UnitState:
    name: str
    props: dict[str, str]

    def get(self, key: str) -> str:
        return self.props.get(key, "")

    @property
    def exists(self) -> bool:
        return self.get("LoadState") not in ("", "not-found")

    @property
    def summary(self) -> str:
        load = self.get("LoadState")
        # masked, or error (a unit file systemd could not parse): say so first
        prefix = f"LoadState={load} " if load not in ("", "loaded") else ""
        return (
            f"{prefix}ActiveState={self.get('ActiveState')} SubState={self.get('SubState')} "
            f"UnitFileState={self.get('UnitFileState') or '-'} Result={self.get('Result')}"
        )

    @property
    def restarts(self) -> int:
        value = self.get("NRestarts")
        return int(value) if value.isdigit() else 0

    @property
    def wanted_by(self) -> list[str]:
        """Units that pull this one in (``WantedBy``/``RequiredBy``/``UpheldBy``/``TriggeredBy``)."""
        return [u for key in WANTED_BY for u in self.get(key).split()]

    @property
    def last_exit(self) -> str:
        """The main process's last exit, e.g. ``status 1``, or '' when it exited cleanly."""
        status, code = self.get("ExecMainStatus"), self.get("ExecMainCode")
        if status in ("", "0"):
            return ""
        # ExecMainCode 1 = exited (status is an exit code), 2/3 = killed/dumped (a signal).
        return f"signal {status}" if code in ("2", "3") else f"status {status}"


def unit_command(unit: str) -> str:
    return f"systemctl show -p {','.join(UNIT_PROPS)} -- {shlex.quote(unit_name(unit))}"


def unit_name(unit: str) -> str:
    """``container@sandbox-live`` -> ``container@sandbox-live.service`` (other suffixes kept)."""
    return unit if re.search(r"\.(service|socket|timer|target|mount|path|scope|slice)$", unit) else f"{unit}.service"


def parse_unit(unit: str, output: str) -> UnitState:
    props = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key.strip()] = value.strip()
    return UnitState(unit, props)


# --------------------------------------------------------------------------- ports


def listening_ports(output: str) -> set[int]:
    ports = set()
    for line in output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "LISTEN":
            _, _, port = fields[3].rpartition(":")
            if port.isdigit():
                ports.add(int(port))
    return ports


def ports_command(container: str | None) -> str:
    if container:
        return f"nixos-container run {shlex.quote(container)} -- ss -Hltn"
    return "ss -Hltn"


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpResponse:
    url: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def json(self) -> Any:
        return json.loads(self.body)

    def describe(self) -> str:
        text = f"{self.status} {REASONS.get(self.status, '')}".rstrip()
        if self.location:
            text += f" -> {self.location}"
        return text


REASONS = {200: "OK", 301: "Moved Permanently", 302: "Found", 303: "See Other",
           307: "Temporary Redirect", 308: "Permanent Redirect", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable"}


def curl_command(url: str, timeout: float, resolve: str | None = None) -> str:
    """GET ``url`` once, never following redirects (a 303 must stay a 303)."""
    argv = ["curl", "-sS", "-i", "--max-time", f"{timeout:g}", "-w", f"\\n{TRAILER}%{{http_code}}"]
    if resolve:
        argv += ["--resolve", resolve]
    return shlex.join([*argv, "--", url])


def parse_curl(url: str, output: str) -> HttpResponse | None:
    """None when curl got no HTTP answer at all (status 000: refused, timeout, TLS error)."""
    head, sep, code = output.rpartition(f"\n{TRAILER}")
    if not sep or not code.strip().isdigit() or int(code) == 0:
        return None
    raw_headers, _, body = head.replace("\r\n", "\n").partition("\n\n")
    headers = {}
    for line in raw_headers.splitlines()[1:]:
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    return HttpResponse(url, int(code), headers, body)


# --------------------------------------------------------------------------- environment

# Names are matched with EREs built from the config's globs (no backslashes: awk -v would eat
# them). Values never leave awk: only names are printed.
ENV_AWK = r"""
function forb(k) { return k ~ forbidden && !(k ~ allowed) }
function flush(   k, v, gw, e, j) {
  if (pid == "") return
  print "PID " pid
  gw = E["CHOIR_PROVIDER_GATEWAY_TOKEN"]
  for (k in S) {
    v = E[k]
    if (length(v) >= 4 && (v in HK)) { print "HOLDS " k " " HK[v]; continue }
    if (!forb(k)) continue
    if (k == "AWS_BEARER_TOKEN_BEDROCK" && gw != "" && v == gw) print "ALLOWED " k
    else print "FORBIDDEN " k
  }
  for (j = 1; j <= nr; j++) if (!(R[j] in S)) print "MISSING " R[j]
  e = tolower(E["CHOIR_ENFORCE_KEYLESS_SANDBOX"]); gsub(/^[ \t]+|[ \t]+$/, "", e)
  if (e ~ /^(0|false|no|off)$/) print "ENFORCE off"
  else if (e ~ /^(1|true|yes|on)$/) print "ENFORCE on"
  else if (("CHOIR_SANDBOX_ID" in S) || ("CHOIR_SANDBOX_ROLE" in S) || ("CHOIR_SANDBOX_USER_ID" in S)) print "ENFORCE on"
  else print "ENFORCE unmanaged"
  print "ROLE " E["CHOIR_SANDBOX_ROLE"]
  pid = ""
}
function keyval(   line, i) {
  line = substr($0, 3); i = index(line, "=")
  if (i <= 1) return 0
  K = substr(line, 1, i - 1); V = substr(line, i + 1); return 1
}
BEGIN { nr = split(required, R, " "); hv = 0 }
$1 == "HV" { hv++; next }
$1 == "HVUNREADABLE" { print "HVUNREADABLE " $2; next }
$1 == "H" { if (keyval() && forb(K) && K ~ /(KEY|TOKEN|SECRET|PASSWORD)/ && length(V) >= 4) HK[V] = K; next }
$1 == "PID" { flush(); pid = $2; split("", E); split("", S); next }
$1 == "UNREADABLE" { flush(); print "PID " $2; print "UNREADABLE"; next }
$1 == "E" { if (pid != "" && keyval()) { E[K] = V; S[K] = 1 }; next }
END { flush(); print "HVCOUNT " hv }
"""


def glob_ere(patterns: tuple[str, ...]) -> str:
    """Shell-style name globs as one anchored ERE without backslashes (``(?!)``-like if empty)."""
    def one(glob: str) -> str:
        return "".join(".*" if c == "*" else "." if c == "?" else c if c.isalnum() or c == "_"
                       else f"[{c}]" for c in glob)
    return "^(" + "|".join(one(p) for p in patterns) + ")$" if patterns else "^$"


def need(*tools: str) -> str:
    """An sh prefix that exits 127 naming the first of ``tools`` missing on the host."""
    names = " ".join(shlex.quote(t) for t in tools)
    return (f"for t in {names}; do command -v \"$t\" >/dev/null 2>&1 || {{ echo \"choirci: '$t' "
            "is not installed on the host (not on PATH)\" >&2; exit 127; }; done; ")


def pgrep(var: str, process: str) -> str:
    """``var=<pids of process>``; pgrep's own failure (exit > 1) exits the probe with 3."""
    return (f"{var}=$(pgrep -x -- {shlex.quote(process)}); rc=$?; if [ $rc -gt 1 ]; then "
            f"echo \"choirci: pgrep -x {process} failed (exit $rc)\" >&2; exit 3; fi; ")


def environ_command(process: str, forbidden: tuple[str, ...], required: tuple[str, ...],
                    allowed: tuple[str, ...] = (), hypervisor: str = "") -> str:
    """Scan every ``process``'s environment (and ``hypervisor``'s provider keys) on the host.

    Ends with ``DONE`` only when every step worked: a missing tool exits 127, pgrep failing
    exits 3, awk failing exits 4, so no exit status is lost in the pipeline or the loops.
    """
    awk = shlex.join(["awk", "-v", f"forbidden={glob_ere(forbidden)}", "-v",
                      f"allowed={glob_ere(allowed)}", "-v", f"required={' '.join(required)}", ENV_AWK])
    hv = pgrep("hv", hypervisor) if hypervisor else "hv=; "
    return (
        need("pgrep", "tr", "sed", "awk", "readlink") + hv + pgrep("pids", process)
        + "{ for h in $hv; do " + _read_env("h", "HV", "H", "HVUNREADABLE") + "done; "
        + "for pid in $pids; do " + _read_env("pid", "PID", "E", "UNREADABLE") + "done; } "
        + f"| {awk} || exit 4; echo DONE"
    )


def _read_env(var: str, header: str, prefix: str, unreadable: str) -> str:
    # A process that exited since pgrep saw it (its environ reads empty, its exe is gone) is
    # skipped: it is neither unreadable nor a process without environment.
    return (f"if [ -r /proc/${var}/environ ]; then e=$(tr '\\0' '\\n' < /proc/${var}/environ 2>/dev/null) || e=; "
            f"if [ -n \"$e\" ] || readlink /proc/${var}/exe >/dev/null 2>&1; then echo \"{header} ${var}\"; "
            f"printf '%s\\n' \"$e\" | sed 's/^/{prefix} /'; fi; "
            f"elif [ -d /proc/${var} ]; then echo \"{unreadable} ${var}\"; fi; ")


@dataclass
class ProcessEnv:
    pid: int
    role: str = ""
    forbidden: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    holds: list[str] = field(default_factory=list)  # "NAME (= the hypervisor's KEY)"
    enforcement: str = ""  # on | off | unmanaged
    unreadable: bool = False

    @property
    def label(self) -> str:
        return f"pid {self.pid}" + (f" (role {self.role})" if self.role else "")


@dataclass
class EnvScan:
    processes: list[ProcessEnv]
    hypervisors: int = 0
    hypervisor_unreadable: list[str] = field(default_factory=list)
    complete: bool = False  # the probe printed DONE: every step answered


def parse_environ(output: str) -> EnvScan:
    scan = EnvScan([])
    out = scan.processes
    for line in output.splitlines():
        kind, _, value = line.strip().partition(" ")
        if kind == "PID" and value.isdigit():
            out.append(ProcessEnv(int(value)))
        elif out and kind in ("FORBIDDEN", "ALLOWED", "MISSING"):
            getattr(out[-1], kind.lower()).append(value)
        elif out and kind == "HOLDS":
            name, _, source = value.partition(" ")
            out[-1].holds.append(f"{name} (= the hypervisor's {source})")
        elif out and kind == "ENFORCE":
            out[-1].enforcement = value
        elif out and kind == "ROLE":
            out[-1].role = value
        elif out and kind == "UNREADABLE":
            out[-1].unreadable = True
        elif kind == "HVUNREADABLE":
            scan.hypervisor_unreadable.append(value)
        elif kind == "HVCOUNT" and value.isdigit():
            scan.hypervisors = int(value)
        elif kind == "DONE":
            scan.complete = True
    for p in out:
        p.forbidden.sort()
        p.allowed.sort()
        p.holds.sort()
    return scan


# --------------------------------------------------------------------------- binaries


def binary_command(path: str) -> str:
    """Resolved path and sha256 of ``path``; nothing when it does not exist; exit 4 when
    it exists but cannot be read (never mistaken for "absent")."""
    q = shlex.quote(path)
    return (need("readlink", "sha256sum") + f"if [ -e {q} ]; then readlink -f -- {q} || exit 4; "
            f"sum=$(sha256sum < {q}) || exit 4; echo \"${{sum%% *}}\"; fi")


def parse_binary(output: str) -> tuple[str, str] | None:
    """(resolved path, sha256 hex) or None when the file does not exist."""
    lines = output.split()
    return (lines[0], lines[1]) if len(lines) >= 2 else None


def expected_binary(expected: str, name: str) -> str:
    """A store output path (``/nix/store/..-sandbox``) means its ``bin/<name>``."""
    if re.match(r"^/nix/store/[^/]+$", expected.rstrip("/")):
        return f"{expected.rstrip('/')}/bin/{name}"
    return expected


# --------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class DiskUsage:
    path: str
    mount: str
    total: int
    free: int

    def describe(self) -> str:
        pct = self.free * 100.0 / self.total if self.total else 0.0
        return f"{human(self.free)} free of {human(self.total)} ({pct:.1f}%) on {self.mount}"


def df_command(path: str) -> str:
    return f"df -Pk -- {shlex.quote(path)}"


def parse_df(path: str, output: str) -> DiskUsage | None:
    lines = [line for line in output.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    # A long device name may wrap onto its own line in some df builds: join the data lines.
    fields = " ".join(lines[1:]).split()
    if len(fields) < 6 or not fields[1].isdigit() or not fields[3].isdigit():
        return None
    return DiskUsage(path, fields[5], int(fields[1]) * 1024, int(fields[3]) * 1024)


def parse_meminfo(output: str) -> int | None:
    """MemAvailable in bytes."""
    match = re.search(r"^MemAvailable:\s+(\d+)\s*kB", output, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024:
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}TiB"
