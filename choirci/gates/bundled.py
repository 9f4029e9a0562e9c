"""The host checks choirci ships (``checks/test_*.py``, the package ``choirci.checks``), read
without importing them: a gate's ``check:`` names one by module and function
(``test_http.py::test_sandbox_health``), validated here when the gate loads."""

from __future__ import annotations

import ast
import difflib
import functools
import importlib.resources
import re
from pathlib import Path

CHECK = re.compile(r"(test_[A-Za-z0-9_]+\.py)::(test_[A-Za-z0-9_]+)")


@functools.lru_cache(maxsize=1)
def checks() -> dict[str, tuple[str, ...]]:
    """Module file name -> the test functions it defines."""
    root = Path(str(importlib.resources.files("choirci.checks")))
    found = {}
    for path in sorted(root.glob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found[path.name] = tuple(node.name for node in tree.body
                                 if isinstance(node, ast.FunctionDef)
                                 and node.name.startswith("test_"))
    return found


def problem(value: str) -> str:
    """Why ``value`` does not name a bundled check, or "" when it does."""
    found = CHECK.fullmatch(value)
    known = checks()
    if not found:
        return (f"{value!r}: name a bundled check by module and function, e.g. "
                "'test_http.py::test_sandbox_health' (never a bare name or a glob)")
    module, function = found.groups()
    if module not in known:
        return f"no bundled check module {module}; known: {', '.join(sorted(known))}"
    if function not in known[module]:
        hint = difflib.get_close_matches(function, known[module], n=1)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        return f"{module} has no check {function}; {did_you_mean}known: {', '.join(known[module])}"
    return ""
