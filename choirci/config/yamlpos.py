"""YAML (and pyproject TOML) loading that remembers where every key came from.

The config validator needs ``file:line`` for each key it complains about, so documents are
composed into PyYAML nodes and converted by hand, recording the 1-based line of every
mapping key and sequence element under its dotted path (``closures.sandbox``,
``rust.targets[1].crate``).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from choirci.errors import ConfigError


@dataclass
class Located:
    """A parsed document plus the line of each dotted key path."""

    data: Any
    source: str
    lines: dict[str, int] = field(default_factory=dict)

    def line(self, path: str) -> int:
        """The line of ``path``, or of its nearest ancestor that has one (1 as a last resort)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return self.lines.get("", 1)

    def where(self, path: str) -> str:
        return f"{self.source}:{self.line(path)}"


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_yaml(path: Path) -> Located:
    source = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the file ({exc.strerror}); check the path") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not UTF-8 text; save the file as UTF-8") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            # An unterminated quote or bracket: where it *started* is the useful line.
            mark = exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise ConfigError(f"{source}:{line}: malformed YAML: {problem}; fix the syntax") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {exc}") from None
    located = Located(data=None, source=source)
    if node is None:
        located.data = {}
        return located
    located.data = _convert(node, "", located)
    return located


def _convert(node: yaml.Node, path: str, located: Located) -> Any:
    located.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(_convert(key_node, path + ".<key>", located))
            child = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(
                    f"{located.source}:{key_node.start_mark.line + 1}: {child}: "
                    "key appears twice; keep one"
                )
            located.lines[child] = key_node.start_mark.line + 1
            out[key] = _convert(value_node, child, located)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            located.lines[child] = item.start_mark.line + 1
            items.append(_convert(item, child, located))
        return items
    # Scalars: let PyYAML's safe constructor resolve ints, bools, nulls, strings.
    return yaml.constructor.SafeConstructor().construct_object(node, deep=True)


def load_pyproject(path: Path) -> Located | None:
    """The ``[tool.choirci]`` table of a pyproject.toml, or None when it has none."""
    source = display_path(path)
    text = path.read_text(encoding="utf-8")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        line = match.group(1) if match else "1"
        raise ConfigError(f"{source}:{line}: malformed TOML: {exc}; fix the syntax") from None
    table = doc.get("tool", {}).get("choirci")
    if table is None:
        return None
    located = Located(data=table, source=source)
    _guess_toml_lines(text, located)
    return located


def _guess_toml_lines(text: str, located: Located) -> None:
    """TOML parsers keep no positions: map ``[tool.choirci.x]`` headers and keys to lines."""
    section = ""
    inside = False
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            name = header.group(1)
            inside = name == "tool.choirci" or name.startswith("tool.choirci.")
            section = name.removeprefix("tool.choirci").lstrip(".")
            if inside:
                located.lines.setdefault(section, number)
            continue
        key = re.match(r"^([A-Za-z0-9_\-]+)\s*=", line)
        if inside and key:
            dotted = f"{section}.{key.group(1)}" if section else key.group(1)
            located.lines.setdefault(dotted, number)


def describe(value: Any) -> str:
    """What a config value is, for "expected X, got Y" errors (says when it is empty)."""
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        kind = "a mapping" if isinstance(value, dict) else "a list"
        return kind if value else kind.replace("a ", "an empty ", 1)
    if isinstance(value, str) and not value.strip():
        return "an empty string" if not value else "only whitespace"
    return repr(value)
