"""Signing keys and the two signing tools: Nix store path signatures and OpenSSH file signatures.

Nix signs store paths with ed25519 keys (``nix key generate-secret``, ``nix store sign
--key-file K``; a store with ``require-sigs = true`` and the key in ``trusted-public-keys``
then accepts the paths through ``nix copy``). Signatures are read back with ``nix path-info
--json --sigs`` (a list of objects on 2.8, an object keyed by path on 2.19+, structured
signatures on the newest: :func:`choirci.nix.formats.parse_path_info` reads them all) and
checked cryptographically with ``nix store verify --no-contents --sigs-needed 1
--trusted-public-keys KEY``. Every call goes through :class:`choirci.nix.adapter.Nix`, so
``nix.extra_args`` (and a ``--store``) apply.

OpenSSH signs files (``ssh-keygen -Y sign -n NAMESPACE -f KEY``, the format of git's SSH
commit signatures) and verifies them against an ``allowed_signers`` file.

Keys: a :class:`KeySpec` is a file path or ``env:NAME``. The secret is read only to be handed
to the tool through a private temporary file (mode 600, deleted afterwards) or stdin; it is
never in an argv, a log line or an error: every tool message passes through a redactor that
knows the key's text, and :class:`Secret` never shows its value in ``repr``. Never imports
pytest.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from choirci import proc
from choirci.errors import ChoirciError
from choirci.nix.adapter import Nix, NixError
from choirci.nix.formats import parse_path_info, unknown_command
from choirci.nix.hashes import FormatError
from choirci.proc import CommandResult
from choirci.release.manifest import Manifest

NAMESPACE = "choirci-evidence"
ENV_PREFIX = "env:"
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# ``name:base64`` of 32 bytes, as ``nix key convert-secret-to-public`` prints it.
NIX_PUBLIC_KEY = re.compile(r"[^\s:]+:[A-Za-z0-9+/]{43}=")
UNTRUSTED = re.compile(r"path '(?P<path>/[^']+)' is untrusted")
SSH_TIMEOUT = 60.0


class KeyError_(ChoirciError):
    """A signing key is missing, unreadable or unusable (exit 2, never an unsigned release)."""


class SigningFailed(ChoirciError):
    """A signing tool refused (its message redacted)."""


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class Secret:
    """A secret key's text and where it came from (``source`` is safe to print)."""

    source: str
    text: str = field(repr=False)
    path: Path | None = None  # the key file, when it came from one

    def redact(self, text: str) -> str:
        """``text`` with the key (whole, each long line of it, and a Nix key's base64 half)
        replaced by ``[REDACTED:<source>]``. (The evidence redactor sits a layer above.)"""
        stripped = self.text.strip()
        parts = {stripped, *(line.strip() for line in self.text.splitlines()
                             if len(line.strip()) >= 16)}
        if ":" in stripped and "\n" not in stripped:
            parts.add(stripped.split(":", 1)[1])
        for part in sorted((p for p in parts if len(p) >= 4), key=len, reverse=True):
            text = text.replace(part, f"[REDACTED:{self.source}]")
        return text


def parse_spec(value: str, what: str) -> tuple[str, str]:
    """``("env", NAME)`` or ``("file", PATH)`` from ``env:NAME`` or a path."""
    if value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if not ENV_NAME.fullmatch(name):
            raise KeyError_(f"{what} {value!r}: {name!r} is not an environment variable name; "
                            "write env:NAME (e.g. env:CHOIRCI_NIX_SIGNING_KEY) or a file path")
        return "env", name
    if not value.strip():
        raise KeyError_(f"{what}: empty; give a key file path or env:NAME")
    return "file", value


def load_key(spec: str, what: str, env: Mapping[str, str] | None = None,
             forbidden_dir: Path | None = None) -> Secret:
    """Read the key ``spec`` names. ``forbidden_dir`` (the evidence dir): a key file inside
    it would be listed, hashed and shipped with the evidence, so it is refused."""
    kind, value = parse_spec(spec, what)
    env = os.environ if env is None else env
    if kind == "env":
        text = env.get(value)
        if not text or not text.strip():
            raise KeyError_(f"{what}: environment variable {value} is {'empty' if text is not None else 'not set'}; "
                            f"export the key in {value}, or give a key file")
        return Secret(source=f"${value}", text=text if text.endswith("\n") else text + "\n")
    path = Path(value).expanduser()
    if forbidden_dir is not None and _inside(path, forbidden_dir):
        raise KeyError_(f"{what} {path}: the key is inside the evidence dir {forbidden_dir}, "
                        "which is hashed and shipped as evidence; keep keys outside it")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyError_(f"{what} {path}: no such file; give the secret key's file or "
                        "env:NAME") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyError_(f"{what} {path}: unreadable ({getattr(exc, 'strerror', None) or type(exc).__name__})"
                        "; check the path and its permissions") from None
    if not text.strip():
        raise KeyError_(f"{what} {path}: the file is empty; it must hold the secret key")
    return Secret(source=str(path), text=text, path=path)


def _inside(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
    except ValueError:
        return False
    return True


@contextlib.contextmanager
def key_file(secret: Secret) -> Iterator[Path]:
    """A file holding the key: its own file, or a private temporary copy of an env key."""
    if secret.path is not None:
        yield secret.path
        return
    with tempfile.TemporaryDirectory(prefix="choirci-key-") as tmp:
        path = Path(tmp) / "key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret.text)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)


def _failed(result: CommandResult, secret: Secret, doing: str, hint: str) -> SigningFailed:
    redact = secret.redact
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()
             if line.strip() and not line.startswith(("copying", "checking", "Signing data"))]
    said = redact(lines[-1]) if lines else "no output"
    return SigningFailed(f"{doing}: `{redact(result.command)}` failed ({result.describe_exit()}): "
                         f"{said}; {hint}")


# --------------------------------------------------------------------------- Nix


def nix_public_key(nix: Nix, secret: Secret) -> str:
    """``name:base64`` public key of a Nix secret key (the secret goes through stdin)."""
    argv = [nix.binary, "--extra-experimental-features", "nix-command flakes",
            "key", "convert-secret-to-public"]
    result = proc.run(argv, env=nix.env, stdin=secret.text, timeout=60,
                      setting="nix.binary in choirci.yaml")
    if not result.ok or not result.stdout.strip():
        raise KeyError_(f"Nix signing key {secret.source} is not a Nix secret key "
                        f"({secret.redact(_last(result.stderr))}); create one with `nix key "
                        "generate-secret --key-name NAME`")
    return result.stdout.strip()


def generate_nix_key(nix: Nix, name: str) -> tuple[str, str]:
    """(secret, public) for a new key named ``name`` (tests, and the README's recipe)."""
    argv = [nix.binary, "--extra-experimental-features", "nix-command flakes",
            "key", "generate-secret", "--key-name", name]
    result = proc.run(argv, env=nix.env, timeout=60, setting="nix.binary in choirci.yaml")
    if not result.ok:
        raise NixError(f"`{result.command}` failed ({result.describe_exit()}): {_last(result.stderr)}")
    secret = result.stdout.strip() + "\n"
    return secret, nix_public_key(nix, Secret(source="new key", text=secret))


def sign_paths(nix: Nix, secret: Secret, paths: Sequence[str], *, recursive: bool = True) -> None:
    """``nix store sign --key-file K [-r] PATHS`` (the closure by default: a store that
    requires signatures refuses a path whose dependencies are unsigned)."""
    if not paths:
        return
    with key_file(secret) as key:
        flags = ["--key-file", str(key), *(["--recursive"] if recursive else [])]
        result = nix.run(nix.argv("store", "sign", *flags, *paths))
        if not result.ok and unknown_command(result.stderr):
            # Probed, not guessed from the version: Nix before 2.4 calls it `nix sign-paths`.
            result = nix.run(nix.argv("sign-paths", *flags, *paths))
    if not result.ok:
        raise _failed(result, secret, "signing the closures",
                      "check the key is a Nix secret key and the paths are in the store")


def closure_paths(nix: Nix, paths: Sequence[str]) -> list[str]:
    """Every path in the closures of ``paths``."""
    if not paths:
        return []
    result = nix.run(nix.argv("path-info", "--recursive", *paths))
    if not result.ok:
        raise NixError(f"`{result.command}` failed ({result.describe_exit()}): {_last(result.stderr)}")
    return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})


def signatures(nix: Nix, paths: Sequence[str]) -> dict[str, tuple[str, ...] | None]:
    """path -> its signatures (``keyname:base64``), None when the path is not on the store."""
    if not paths:
        return {}
    result = nix.run(nix.argv("path-info", "--json", "--sigs", *paths))
    if not result.ok:
        raise NixError(f"`{result.command}` failed ({result.describe_exit()}): {_last(result.stderr)}")
    try:
        infos = parse_path_info(result.stdout)
    except FormatError as exc:
        raise NixError(f"{exc} (from `{result.command}`)") from None
    return {p: (None if (info := infos.get(p)) is None else info.signatures) for p in paths}


def key_name(key: str) -> str:
    return key.split(":", 1)[0]


def signature_problems(nix: Nix, paths: Sequence[str], public_key: str,
                       where: str = "the local store") -> dict[str, str]:
    """path -> why it does not carry a valid signature by ``public_key`` on ``nix``'s store
    (absent, unsigned, signed by other keys only, or a signature that does not verify)."""
    found = signatures(nix, paths)
    name = key_name(public_key)
    problems: dict[str, str] = {}
    for path, sigs in found.items():
        if sigs is None:
            problems[path] = f"{path} is not on {where}"
        elif not sigs:
            problems[path] = f"{path} carries no signature on {where}"
        elif not any(key_name(s) == name for s in sigs):
            others = ", ".join(sorted({key_name(s) for s in sigs}))
            problems[path] = f"{path} is signed only by {others} on {where}, not by {name}"
    named = [p for p in paths if p not in problems]
    if named:
        result = nix.run(nix.argv("store", "verify", "--no-contents", "--sigs-needed", "1",
                                  "--trusted-public-keys", public_key, *named))
        bad = {m["path"] for m in UNTRUSTED.finditer(result.stderr)}
        for path in named:
            if path in bad:
                problems[path] = (f"{path} has a signature named {name} on {where} that does not "
                                  "verify with the given public key")
        if not result.ok and not bad:
            raise NixError(f"`{result.command}` failed ({result.describe_exit()}): "
                           f"{_last(result.stderr)}")
    return problems


def check_public_key(key: str, what: str = "--require-signature") -> str:
    """``key`` stripped, or a one-line error: a Nix public key is ``name:base64``."""
    if not NIX_PUBLIC_KEY.fullmatch(key.strip()):
        raise ChoirciError(f"{what} {key.strip()[:60]!r}: not a Nix public key; expected NAME:BASE64 "
                           "as `nix key convert-secret-to-public < SECRET` prints it (e.g. "
                           "grind-1:v1MN...L1k=)")
    return key.strip()


@dataclass(frozen=True)
class UnsignedPath:
    """A release path without a valid signature by the required key, phrased for an operator."""

    closure: str
    path: str
    reason: str  # "... is signed only by x on ssh://prod, not by grind-1"
    key: str

    def __str__(self) -> str:
        return (f"{self.closure}: signature: {self.reason}; only paths signed by {key_name(self.key)} "
                "are promoted: sign them on grind (`choirci release sign`) and copy them again")


def manifest_signature_problems(nix: Nix, release: Manifest, public_key: str,
                                where: str) -> list[UnsignedPath]:
    """For ``choirci manifest verify --require-signature KEY``: each of the manifest's paths
    that does not carry a valid signature by ``public_key`` on ``nix``'s store (``--store``
    goes in ``nix``'s extra args; ``where`` names it)."""
    key = check_public_key(public_key)
    owner = {o.path: c.name for c in release.closures for o in c.outputs}
    problems = signature_problems(nix, list(owner), key, where)
    return [UnsignedPath(owner[path], path, reason, key) for path, reason in problems.items()]


# --------------------------------------------------------------------------- OpenSSH


def ssh_sign(secret: Secret, data: str, namespace: str = NAMESPACE,
             program: str = "ssh-keygen") -> str:
    """The armored SSH signature of ``data`` (``ssh-keygen -Y sign`` reading stdin)."""
    with key_file(secret) as key:
        result = proc.run([program, "-Y", "sign", "-n", namespace, "-f", str(key)],
                          stdin=data, timeout=SSH_TIMEOUT)
    if not result.ok or "BEGIN SSH SIGNATURE" not in result.stdout:
        raise _failed(result, secret, f"signing with SSH key {secret.source}",
                      "give an unencrypted OpenSSH private key with mode 600 "
                      "(ssh-keygen -t ed25519 -N '' -f KEY)")
    return result.stdout


def ssh_public_key(secret: Secret, program: str = "ssh-keygen") -> str:
    """``TYPE BASE64`` of the SSH key (for the allowed_signers line the README shows)."""
    with key_file(secret) as key:
        result = proc.run([program, "-y", "-f", str(key)], timeout=SSH_TIMEOUT)
    if not result.ok:
        raise _failed(result, secret, f"reading SSH key {secret.source}",
                      "give an unencrypted OpenSSH private key with mode 600")
    return " ".join(result.stdout.split()[:2])


def ssh_principals(signature: Path, allowed_signers: Path,
                   program: str = "ssh-keygen") -> tuple[list[str], str]:
    """(the identities of ``allowed_signers`` whose key made ``signature``, ssh-keygen's
    word when there are none: ``No principal matched.``, or why it could not tell)."""
    result = proc.run([program, "-Y", "find-principals", "-s", str(signature),
                       "-f", str(allowed_signers)], timeout=SSH_TIMEOUT)
    found = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    return (found, "") if result.ok and found else ([], _last(result.stderr))


def ssh_verify(data: str, signature: Path, allowed_signers: Path, identity: str,
               namespace: str = NAMESPACE, program: str = "ssh-keygen") -> str | None:
    """None when ``signature`` is a good signature of ``data`` by ``identity``'s key in
    ``allowed_signers`` for ``namespace``; else ssh-keygen's reason."""
    result = proc.run([program, "-Y", "verify", "-f", str(allowed_signers), "-I", identity,
                       "-n", namespace, "-s", str(signature)], stdin=data, timeout=SSH_TIMEOUT)
    if result.ok:
        return None
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    return "; ".join(lines[-2:]) if lines else result.describe_exit()


def _last(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"
