"""One redaction pass for everything choirci writes (JUnit, JSON, Markdown, step summary).

Secret *values* are taken from the environment of the process that writes the evidence:
every variable whose name matches :data:`SECRET_NAMES` (``*_KEY``, ``*_TOKEN``, ``*_SECRET``,
``*PASSWORD*``, ``AWS_*``) or one of the configured extras (``redact:`` in choirci.yaml,
exact names or shell-style globs) is replaced by ``[REDACTED:NAME]`` wherever its value
appears. Names are matched case-insensitively.

Very short values (fewer than :data:`MIN_LENGTH` characters) and boolean-like words
(``true``, ``off``, ...) are deliberately left alone: replacing every ``1`` or ``true`` in a
log would mangle the evidence while protecting nothing. A multi-line value (a PEM key) is
also redacted line by line, because tools re-wrap or re-indent it.

Redaction must come before any cut: a log cut in the middle of a secret would otherwise
leave a prefix that no longer matches. Texts are therefore redacted where they enter the
record (``choirci.session.outcomes``) and again on writing; lines printed to the terminal (the CI
log) go through :func:`for_terminal`. As a second line of defence for texts cut earlier
(by an adapter, before choirci saw them), a piece of a secret at a cut marker (a prefix
before ``...``/``…``, a suffix after ``[...]`` or ``...]`` + newline) is redacted too.

Text that comes back from a *host* (an HTTP body, a JSON field, a command's stderr) may hold
secrets that exist only on that host, which no environment lookup can know. :func:`scrub`
redacts them by shape: the value of a secret-shaped assignment (``OPENAI_API_KEY=sk-..``,
``"db_password": "x"``, ``token: x``), ``Bearer``/``Basic`` credentials, and well-known key
formats (``sk-...``, ``ghp_...``, ``AKIA...``, ``xoxb-...``, ``AIza...``, JWTs). It only
replaces values: names, paths, store hashes and numbers stay, so a message keeps its meaning.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

SECRET_NAMES = ("*_KEY", "*_TOKEN", "*_SECRET", "*PASSWORD*", "AWS_*")
MIN_LENGTH = 4
MIN_LINE_LENGTH = 16
HARMLESS = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "unset"})

Redact = Callable[[str], str]
# A secret's head right before a cut ("abc...", "abc…", text.cut's "\n[... N characters cut"),
# its tail right after one (nix.tail's "[...]", "... omitted ...]\n").
CUT_AFTER = r"(?=\.\.\.|…|\n\[\.\.\. )"
CUT_BEFORE = (r"(?<=\[\.\.\.\])", r"(?<=\.\.\.\]\n)")
CUT_MARKS = ("...", "…")


# ---------------------------------------------------------------- shape-based (host output)

# Names whose value is a secret, in assignments found in host output: the SECRET_NAMES
# shapes plus the bare words (a query string's ``token=``, a header's ``Authorization:``).
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_BARE = r"(?:token|secret|password|passwd|pwd|api[_-]?key|apikey|auth|authorization|credentials?)"
_ASSIGN = re.compile(
    rf"""(?P<q>["']?)(?P<name>{_NAME})(?P=q)(?P<sep>\s*[:=]\s*)(?P<v>"[^"\n]*"|'[^'\n]*'|[^\s"',;&}}\]\)]+)"""
)
_CREDENTIAL = re.compile(r"(?i)\b(?P<scheme>bearer|basic|token)(?P<sp>\s+)(?P<v>[A-Za-z0-9._~+/=-]{8,})")
# Well-known key formats; each must start at a word boundary that is not a path or id piece.
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_/.-])(?:"
    r"sk-[A-Za-z0-9_-]{12,}"                   # OpenAI/Anthropic-style (sk-..., sk-ant-..., sk-proj-...)
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|glpat-[A-Za-z0-9_-]{16,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|AIza[0-9A-Za-z_-]{30,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JWT
    r")"
)
REDACTED = "[REDACTED:"
CREDENTIAL_SCHEMES = frozenset({"bearer", "basic", "token", "digest"})


def _secret_shaped(name: str) -> bool:
    plain = name.strip("\"'").replace("-", "_").replace(".", "_")
    return is_secret_name(plain) or re.fullmatch(rf"(?i)(?:[A-Za-z0-9]+_)*{_BARE}", plain) is not None


def scrub(text: str) -> str:
    """``text`` with secret-shaped values replaced (for output that comes back from a host).

    ``OPENAI_API_KEY=sk-abc...`` becomes ``OPENAI_API_KEY=[REDACTED:OPENAI_API_KEY]``,
    ``Bearer abc...`` becomes ``Bearer [REDACTED:bearer]``, a bare ``sk-...`` key becomes
    ``[REDACTED:key]``. Idempotent; harmless values (``true``, short ones) are left alone.
    """
    if not text:
        return text

    text = _CREDENTIAL.sub(_credential, text)
    text = _ASSIGN.sub(_assignment, text)
    return _KEY_SHAPES.sub("[REDACTED:key]", text)


def _credential(m: re.Match[str]) -> str:
    if m.group("v").startswith(REDACTED):
        return m.group(0)
    return f"{m.group('scheme')}{m.group('sp')}[REDACTED:{m.group('scheme').lower()}]"


def _assignment(m: re.Match[str]) -> str:
    value, name = m.group("v"), m.group("name")
    head = m.group(0)[: m.start("v") - m.start()]
    quoted = len(value) > 1 and value[0] in "\"'" and value[-1] == value[0]
    inner = value[1:-1] if quoted else value
    if not _secret_shaped(name):
        # Not a secret name, but its value may hold one ('"status": "X_KEY=..."', a URL's query).
        return head + _ASSIGN.sub(_assignment, value)
    if inner.startswith(REDACTED) or inner.lower() in CREDENTIAL_SCHEMES or not _worth_redacting(inner):
        return m.group(0)
    quote = value[0] if quoted else ""
    return f"{head}{quote}[REDACTED:{name}]{quote}"


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    upper = name.upper()
    return any(fnmatch.fnmatchcase(upper, p.upper()) for p in (*SECRET_NAMES, *extra))


def _worth_redacting(value: str) -> bool:
    stripped = value.strip()
    return len(stripped) >= MIN_LENGTH and stripped.lower() not in HARMLESS


@dataclass(frozen=True)
class Redactor:
    """Replaces known secret values; ``Redactor.from_env()`` is the usual way to get one."""

    secrets: tuple[tuple[str, str], ...] = ()  # (value, NAME), longest value first

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, extra: Iterable[str] = ()
    ) -> Redactor:
        env = os.environ if env is None else env
        extra = tuple(extra)
        found: dict[str, str] = {}
        for name, value in sorted(env.items()):
            if not is_secret_name(name, extra):
                continue
            for part in _parts(value):
                found.setdefault(part, name)
        ordered = sorted(found.items(), key=lambda pair: (-len(pair[0]), pair[0]))
        return cls(secrets=tuple(ordered))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(sorted({name for _value, name in self.secrets}))

    def __call__(self, text: str) -> str:
        if not self.secrets or not text:
            return text
        text = self._pattern.sub(lambda m: f"[REDACTED:{self._lookup[m.group(0)]}]", text)
        if any(mark in text for mark in CUT_MARKS):
            text = self._pieces.sub(lambda m: f"[REDACTED:{self._piece_names[m.lastgroup or '']}]",
                                    text)
        return text

    def tree(self, data: Any) -> Any:
        """Redact every string (keys too) inside JSON-like data."""
        if isinstance(data, str):
            return self(data)
        if isinstance(data, Mapping):
            return {self(str(k)): self.tree(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [self.tree(v) for v in data]
        return data

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(re.escape(value) for value, _ in self.secrets))

    @functools.cached_property
    def _lookup(self) -> dict[str, str]:
        return dict(self.secrets)

    @functools.cached_property
    def _pieces(self) -> re.Pattern[str]:
        """Heads of secrets before a cut marker, tails after one (longest first)."""
        alternatives = []
        for index, (value, _name) in enumerate(self.secrets):
            sizes = range(len(value) - 1, MIN_LENGTH - 1, -1)
            heads = "|".join(re.escape(value[:n]) for n in sizes)
            tails = "|".join(re.escape(value[-n:]) for n in sizes)
            if heads:
                alternatives.append(f"(?P<h{index}>{heads}){CUT_AFTER}")
                alternatives += [f"{before}(?P<t{index}_{k}>{tails})"
                                 for k, before in enumerate(CUT_BEFORE)]
        return re.compile("|".join(alternatives) or "(?!)")

    @functools.cached_property
    def _piece_names(self) -> dict[str, str]:
        names = {}
        for index, (_value, name) in enumerate(self.secrets):
            names[f"h{index}"] = name
            names.update({f"t{index}_{k}": name for k in range(len(CUT_BEFORE))})
        return names


def _parts(value: str) -> list[str]:
    parts = [value.strip()] if _worth_redacting(value) else []
    if "\n" in value.strip():
        parts += [line.strip() for line in value.splitlines() if len(line.strip()) >= MIN_LINE_LENGTH]
    return parts


def for_terminal(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with the secret values of the current environment (and the ``extra`` names,
    the config's ``redact:``) replaced: for progress lines printed to the terminal."""
    return _env_redactor(tuple(sorted(os.environ.items())), tuple(extra))(text)


@functools.lru_cache(maxsize=8)
def _env_redactor(env: tuple[tuple[str, str], ...], extra: tuple[str, ...]) -> Redactor:
    # Keyed by the environment itself, so a changed variable is never served stale.
    return Redactor.from_env(dict(env), extra)
