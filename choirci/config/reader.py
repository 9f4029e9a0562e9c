"""The typed YAML reader every config section parser uses (below them all: no section imports
another, and none imports the package that assembles them).

Each accessor raises a :class:`~choirci.errors.ConfigError` whose message is one line:
``file:line: key.path: what is wrong; what is allowed``.
"""

from __future__ import annotations

import difflib
import re
import shlex
from typing import Any

from choirci.config.yamlpos import Located
from choirci.config.yamlpos import describe as _describe
from choirci.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class Reader:
    """Typed accessors that raise ConfigErrors pointing at the offending line."""

    def __init__(self, located: Located) -> None:
        self.located = located

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.located.where(path)}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    hint = difflib.get_close_matches(key, allowed, n=1)
                    did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                    raise self.fail(
                        _join(path, key),
                        f"unknown key{did_you_mean}; allowed: {', '.join(allowed)}",
                    )
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_describe(value)}")
        return value

    def optional_string(self, value: Any, path: str) -> str | None:
        return None if value is None else self.string(value, path)

    def number(self, value: Any, path: str, default: float) -> float:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self.fail(path, f"expected a positive number of seconds, got {_describe(value)}")
        return float(value)

    def strings(self, value: Any, path: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list of strings, got {_describe(value)}")
        return tuple(self.string(item, f"{path}[{i}]") for i, item in enumerate(value))

    def argv(self, value: Any, path: str) -> tuple[str, ...]:
        """A command as a list, or a string split like a shell would (never run by a shell)."""
        if isinstance(value, str):
            try:
                parts = tuple(shlex.split(value))
            except ValueError as exc:
                raise self.fail(path, f"cannot split the command ({exc}); fix the quoting") from None
            if not parts:
                raise self.fail(path, "empty command; give the program and its arguments")
            return parts
        parts = self.strings(value, path)
        if not parts:
            raise self.fail(path, "expected a command (string or list), got nothing")
        return parts

    def name(self, value: str, path: str) -> str:
        if not NAME.match(value):
            raise self.fail(path, f"invalid name {value!r}; use letters, digits, '_', '-', '.'")
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
