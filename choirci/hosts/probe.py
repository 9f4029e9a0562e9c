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
* sandbox environ scan: ``PID n``, then ``FORBIDDEN K``/``ALLOWED K``/``MISSING K``/``ROLE v``/
  ``UNREADABLE`` lines. Values of secret variables are compared on the host by awk and never
  printed, so no secret crosses the wire or reaches evidence.

Probes of a promoted host (running executables, store paths, GC roots, the workspace
checkout, file modes) are in :mod:`choirci.hosts.promoted`.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

UNIT_PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "Result", "MainPID")
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
        return (
            f"ActiveState={self.get('ActiveState')} SubState={self.get('SubState')} "
            f"UnitFileState={self.get('UnitFileState') or '-'} Result={self.get('Result')}"
        )


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

ENV_AWK = r"""
BEGIN { nf = split(forbidden, F, " "); nr = split(required, R, " ") }
{ i = index($0, "="); if (i > 1) { k = substr($0, 1, i - 1); E[k] = substr($0, i + 1); S[k] = 1 } }
END {
  gw = E["CHOIR_PROVIDER_GATEWAY_TOKEN"]
  for (j = 1; j <= nf; j++) { k = F[j]; if (k in S) {
    if (k == "AWS_BEARER_TOKEN_BEDROCK" && gw != "" && E[k] == gw) print "ALLOWED " k
    else print "FORBIDDEN " k } }
  for (j = 1; j <= nr; j++) { k = R[j]; if (!(k in S)) print "MISSING " k }
  print "ROLE " E["CHOIR_SANDBOX_ROLE"]
}
"""


def environ_command(process: str, forbidden: tuple[str, ...], required: tuple[str, ...]) -> str:
    awk = shlex.join(["awk", "-v", f"forbidden={' '.join(forbidden)}", "-v",
                      f"required={' '.join(required)}", ENV_AWK])
    return (
        f"for pid in $(pgrep -x {shlex.quote(process)}); do echo \"PID $pid\"; "
        f"if [ -r /proc/$pid/environ ]; then tr '\\0' '\\n' < /proc/$pid/environ | {awk}; "
        "else echo UNREADABLE; fi; done"
    )


@dataclass
class ProcessEnv:
    pid: int
    role: str = ""
    forbidden: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unreadable: bool = False

    @property
    def label(self) -> str:
        return f"pid {self.pid}" + (f" (role {self.role})" if self.role else "")


def parse_environ(output: str) -> list[ProcessEnv]:
    out: list[ProcessEnv] = []
    for line in output.splitlines():
        kind, _, value = line.strip().partition(" ")
        if kind == "PID" and value.isdigit():
            out.append(ProcessEnv(int(value)))
        elif out and kind in ("FORBIDDEN", "ALLOWED", "MISSING"):
            getattr(out[-1], kind.lower()).append(value)
        elif out and kind == "ROLE":
            out[-1].role = value
        elif out and kind == "UNREADABLE":
            out[-1].unreadable = True
    return out


# --------------------------------------------------------------------------- binaries


def binary_command(path: str) -> str:
    q = shlex.quote(path)
    return f"if [ -e {q} ]; then readlink -f -- {q}; sha256sum < {q} | cut -d' ' -f1; fi"


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
