"""Probes of a promoted host: what runs (``/proc/<pid>/exe``), whether the release's store
paths are valid and GC-rooted, the workspace checkout and secret file modes. Same contract as
:mod:`choirci.hosts.probe`: ``*_command`` builds a POSIX sh command, ``parse_*`` reads its output.

Formats:

* running executables: ``EXE <pid> <sha256|-> <readlink /proc/pid/exe>`` (path empty when
  unreadable; a replaced file reads ``<path> (deleted)``).
* store paths: ``PATH <valid|invalid|unknown> <exists|absent> <path>`` (``unknown``: no
  ``nix-store`` on the host, only ``test -e`` answered).
* ``nix-store --query --roots``: ``<root> -> <path>`` lines, then our ``RC n``; ``NONIX`` alone
  when the host has no ``nix-store``. Runtime roots (``/proc/..``, ``{censored}``) vanish when
  the process stops, so they do not count as keeping a path.
* git checkout: ``ABSENT``, ``NOTGIT <error>``, or ``BRANCH``/``HEAD``/``UPSTREAM`` lines and one
  ``DIRTY <porcelain line>`` per change (untracked files included, as the promote gate counts).
* file modes: ``<octal> <user>:<group> <path>`` per existing match of a path or glob.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass

from choirci.hosts.probe import need, pgrep

# --------------------------------------------------------------------------- release


@dataclass(frozen=True)
class RunningExe:
    pid: int
    path: str  # readlink /proc/<pid>/exe: empty when unreadable
    sha256: str


def exe_command(*, pid: int | None = None, process: str | None = None) -> str:
    """The executable of ``pid``, or of every process whose name is exactly ``process``.

    pgrep failing (exit > 1) or a missing tool is an exit status of its own, never "0 processes".
    """
    source = f"pids={pid}; " if pid is not None else pgrep("pids", process or "")
    return (need("pgrep", "sha256sum", "readlink") + source
            + "for pid in $pids; do sha=$({ sha256sum < /proc/$pid/exe; } 2>/dev/null); sha=${sha%% *}; "
            "echo \"EXE $pid ${sha:--} $(readlink /proc/$pid/exe 2>/dev/null)\"; done; echo DONE")


def parse_exes(output: str) -> list[RunningExe]:
    out = []
    for line in output.splitlines():
        fields = line.split(" ", 3)
        if len(fields) >= 3 and fields[0] == "EXE" and fields[1].isdigit():
            path = fields[3].strip() if len(fields) == 4 else ""
            out.append(RunningExe(int(fields[1]), path, "" if fields[2] == "-" else fields[2]))
    return out


@dataclass(frozen=True)
class StoreState:
    path: str
    valid: bool | None  # None: the host has no nix-store, only existence is known
    exists: bool


def store_command(paths: list[str]) -> str:
    quoted = " ".join(shlex.quote(p) for p in paths)
    return (
        "if command -v nix-store >/dev/null 2>&1; then nix=1; else nix=; fi; "
        f"for p in {quoted}; do v=unknown; if [ -n \"$nix\" ]; then "
        "if out=$(nix-store --check-validity -- \"$p\" 2>&1); then v=valid; else "
        # only "is not valid" means invalid; any other failure (no daemon, no permission on
        # the store database) is nix-store not answering: exit 4, never "invalid"
        "case $out in *'is not valid'*) v=invalid;; *) echo \"choirci: nix-store --check-validity "
        "$p failed: $out\" >&2; exit 4;; esac; fi; fi; "
        "if [ -e \"$p\" ]; then e=exists; else e=absent; fi; echo \"PATH $v $e $p\"; done"
    )


def parse_store(output: str) -> dict[str, StoreState]:
    states = {}
    for line in output.splitlines():
        fields = line.split(" ", 3)
        if len(fields) == 4 and fields[0] == "PATH":
            valid = {"valid": True, "invalid": False}.get(fields[1])
            states[fields[3]] = StoreState(fields[3], valid, fields[2] == "exists")
    return states


def roots_command(path: str) -> str:
    return ("command -v nix-store >/dev/null 2>&1 || { echo NONIX; exit 0; }; "
            f"nix-store --query --roots -- {shlex.quote(path)}; echo \"RC $?\"")


def parse_roots(output: str) -> tuple[list[str], int] | None:
    """(persistent roots, nix-store exit code), or None when the host has no nix-store."""
    lines = output.splitlines()
    if "NONIX" in lines:
        return None
    rc = next((int(x[3:]) for x in lines if re.match(r"^RC \d+$", x)), -1)
    roots = [line.split(" -> ", 1)[0] for line in lines if " -> " in line]
    return [r for r in roots if not r.startswith(("/proc/", "{"))], rc


# --------------------------------------------------------------------------- host state


@dataclass(frozen=True)
class Checkout:
    path: str
    state: str  # ok | absent | not-git
    error: str = ""
    branch: str = ""  # empty: detached HEAD
    head: str = ""
    upstream: str = ""  # origin/<branch> as of the last fetch, empty if unknown
    dirty: tuple[str, ...] = ()


def git_command(path: str, branch: str) -> str:
    q = shlex.quote(path)
    # safe.directory: the checkout is often owned by another user than the one checking it.
    git = f"git -c safe.directory={q} -C {q}"
    remote = shlex.quote(f"refs/remotes/origin/{branch}")
    return (
        "command -v git >/dev/null 2>&1 || exit 127; "
        f"[ -d {q} ] || {{ echo ABSENT; exit 0; }}; "
        f"err=$({git} rev-parse --git-dir 2>&1 >/dev/null) || {{ echo \"NOTGIT $err\"; exit 0; }}; "
        f"echo \"BRANCH $({git} symbolic-ref --short -q HEAD)\"; "
        f"echo \"HEAD $({git} rev-parse -q --verify HEAD)\"; "
        f"echo \"UPSTREAM $({git} rev-parse -q --verify {remote})\"; "
        # git status failing (a lock, a corrupt index) must not read as "no changes"
        f"st=$({git} status --porcelain --untracked-files=normal) || exit 4; "
        "[ -z \"$st\" ] || printf '%s\\n' \"$st\" | sed 's/^/DIRTY /'"
    )


def parse_git(path: str, output: str) -> Checkout:
    lines = output.splitlines()
    if "ABSENT" in lines:
        return Checkout(path, "absent")
    notgit = next((line for line in lines if line.startswith("NOTGIT")), None)
    if notgit is not None:
        return Checkout(path, "not-git", error=notgit[6:].strip())
    values = {k: v.strip() for k, _, v in (line.partition(" ") for line in lines)
              if k in ("BRANCH", "HEAD", "UPSTREAM")}
    dirty = tuple(line[6:] for line in lines if line.startswith("DIRTY "))
    return Checkout(path, "ok", branch=values.get("BRANCH", ""), head=values.get("HEAD", ""),
                    upstream=values.get("UPSTREAM", ""), dirty=dirty)


@dataclass(frozen=True)
class FileMode:
    path: str
    mode: str  # as stat %a prints it: "600"
    owner: str


def glob_word(pattern: str) -> str:
    """``pattern`` as one sh word: quoted, except its ``*`` and ``?`` (which the shell expands)."""
    return "".join(p if p in ("*", "?") else shlex.quote(p) for p in re.split(r"([*?])", pattern) if p)


def modes_command(pattern: str) -> str:
    return (need("stat") + f"for f in {glob_word(pattern)}; do if [ -e \"$f\" ]; then "
            "stat -L -c '%a %U:%G %n' -- \"$f\" || exit 4; fi; done")


def parse_modes(output: str) -> list[FileMode]:
    out = []
    for line in output.splitlines():
        fields = line.split(" ", 2)
        if len(fields) == 3 and re.match(r"^[0-7]{3,4}$", fields[0]):
            out.append(FileMode(fields[2], fields[0], fields[1]))
    return out


# --------------------------------------------------------------------------- NixOS system

SYSTEM_LINKS = ("/run/current-system", "/run/booted-system")
BOOT_PARTS = ("kernel", "initrd", "kernel-modules")  # what needs a reboot when it changes
SHAPE = ("nixos-version", "init", "kernel")  # a toplevel, as phase-3 decides it
STORE_PREFIX = re.compile(r"^(/nix/store/[0-9a-z]{32}-[^/\s]+)")


@dataclass(frozen=True)
class SystemState:
    """``links``: link -> resolved path (absent links are missing); ``parts``: (link, part) ->
    resolved path; ``execs``: unit file name -> the store path its ExecStart executes."""

    links: dict[str, str]
    parts: dict[tuple[str, str], str]
    execs: dict[str, str]
    revision: str | None = None  # nixos-version --json's configurationRevision (a commit id)

    def shaped(self, link: str) -> bool:
        return all((link, part) in self.parts for part in SHAPE)


def system_command() -> str:
    """``LINK <link> <target|->``, ``PART <link> <part> <target>`` and, for the current
    system, ``EXEC <unit file> <ExecStart>``; a failing readlink or sed is exit 4."""
    return (need("readlink", "sed") + "for l in " + " ".join(SYSTEM_LINKS) + "; do "
            "if [ -e \"$l\" ]; then t=$(readlink -f -- \"$l\") || exit 4; echo \"LINK $l $t\"; "
            "for f in " + " ".join(dict.fromkeys(BOOT_PARTS + SHAPE)) + "; do "
            "if [ -e \"$t/$f\" ]; then p=$(readlink -f -- \"$t/$f\") || exit 4; echo \"PART $l $f $p\"; fi; "
            "done; else echo \"LINK $l -\"; fi; done; "
            "if [ -e /run/current-system ]; then for u in /run/current-system/etc/systemd/system/*.service; do "
            "if [ -e \"$u\" ]; then sed -n \"s|^ExecStart=[-@+!:]*|EXEC ${u##*/} |p\" \"$u\" || exit 4; fi; "
            "done; v=/run/current-system/sw/bin/nixos-version; "
            # the commit the system was built from (system.configurationRevision), if it says
            "if [ -x \"$v\" ] && j=$(\"$v\" --json 2>/dev/null); then printf 'REV %s\\n' \"$j\" | tr -d '\\n'; "
            "echo; fi; fi; echo END")


def parse_system(output: str) -> SystemState | None:
    """None when the probe's END marker is missing (it stopped half-way)."""
    links: dict[str, str] = {}
    parts: dict[tuple[str, str], str] = {}
    execs: dict[str, str] = {}
    revision = None
    done = False
    for line in output.splitlines():
        fields = line.split(" ", 3)
        if line.startswith("REV "):
            revision = _revision(line[4:])
        if fields[0] == "LINK" and len(fields) == 3 and fields[2] != "-":
            links[fields[1]] = fields[2]
        elif fields[0] == "PART" and len(fields) == 4:
            parts[(fields[1], fields[2])] = fields[3]
        elif fields[0] == "EXEC" and len(fields) >= 3:
            match = STORE_PREFIX.match(line.split(" ", 2)[2].strip())
            if match and fields[1] not in execs:
                execs[fields[1]] = match[1]
        done = done or line == "END"
    return SystemState(links, parts, execs, revision) if done else None


def _revision(text: str) -> str | None:
    try:
        value = json.loads(text).get("configurationRevision")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40}", value) else None


def service_files(units: tuple[str, ...]) -> tuple[str, ...]:
    """Unit names (``hypervisor``, ``cloud-hypervisor@``, ``container@sandbox-live``) -> their
    unit files in etc/systemd/system (an instance's is its template's, ``container@.service``)."""
    def file(unit: str) -> str:
        base = unit.removesuffix(".service")
        return (base.split("@", 1)[0] + "@" if "@" in base else base) + ".service"
    return tuple(dict.fromkeys(file(u) for u in units))


# --------------------------------------------------------------------------- signatures


def signature_command(paths: list[str], public_key: str) -> str:
    """The signatures on ``paths`` (``nix path-info --sigs``: ``<path><TAB><tokens>``) and
    ``nix store verify`` of them against the one trusted key (signatures only, no content
    re-hash); ``RC n`` last. A host without ``nix`` exits 4 (a tool missing, not a finding)."""
    quoted = " ".join(shlex.quote(p) for p in paths)
    nix = "nix --extra-experimental-features nix-command"
    return ("command -v nix >/dev/null 2>&1 || { echo 'choirci: no nix on the host' >&2; exit 4; }; "
            f"{nix} path-info --sigs -- {quoted} | sed 's/^/SIGS /' || exit 4; "
            f"{nix} store verify --no-contents --sigs-needed 1 "
            f"--trusted-public-keys {shlex.quote(public_key)} -- {quoted} 2>&1; echo \"RC $?\"")


_UNTRUSTED = re.compile(r"path '(?P<path>/nix/store/[^']+)' is untrusted")
_SIGNATURE = re.compile(r"^(?P<name>[^:\s]+):[A-Za-z0-9+/]{86}==$")


def parse_signatures(output: str, key_name: str) -> tuple[dict[str, str], int] | None:
    """(path -> why it lacks a valid signature by the key named ``key_name``, nix's exit
    status), or None when the output has no ``RC`` line (the probe did not finish). A
    content-addressed path that no key signed counts as unsigned: Nix would trust it by its
    hash, but promotion asks for the grind signature on every path."""
    rc = next((int(line.split()[1]) for line in reversed(output.splitlines())
               if line.startswith("RC ") and line.split()[1].lstrip("-").isdigit()), None)
    if rc is None:
        return None
    problems: dict[str, str] = {}
    for line in output.splitlines():
        if line.startswith("SIGS "):
            path, _, tokens = line[5:].partition("\t")
            names = [m["name"] for t in tokens.split() if (m := _SIGNATURE.match(t))]
            if key_name not in names:
                problems[path.strip()] = ("is signed only by " + ", ".join(sorted(set(names)))
                                          if names else "carries no signature")
    for m in _UNTRUSTED.finditer(output):
        problems.setdefault(m["path"], f"has a signature named {key_name} that does not verify "
                                       "with the given key")
    return problems, rc
