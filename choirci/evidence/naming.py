"""How a pytest node id becomes an area, a JUnit classname + name, and a target host.

* Synthetic areas (``closures::sandbox``, ``rust::sandbox::desktop_api_test::t``): the area
  is the first part; the classname the parts between area and name joined with dots
  (``sandbox.desktop_api_test``), or the area itself when there are none.
* Items marked ``host`` form the ``hosts`` area; their host is the ``host`` user property,
  else the parametrisation id (testinfra parametrises per host: ``test_x[ssh://grind]``).
* Everything else is ``python`` with pytest's own classname (``tests.test_x.TestC``).

A ``classname`` user property always wins over the derived one, and a ``name`` property over
the derived name (Rust test names contain ``::`` that the node id split would cut).
"""

from __future__ import annotations

from collections.abc import Iterable

SYNTHETIC_AREAS = ("closures", "loops", "rust", "release")
HOSTS = "hosts"
PYTHON = "python"


def split_param(nodeid: str) -> tuple[str, str]:
    """``a.py::t[x::y]`` -> (``a.py::t``, ``x::y``); a param may contain anything."""
    if nodeid.endswith("]") and "[" in nodeid:
        base, _, param = nodeid.partition("[")
        return base, param[:-1]
    return nodeid, ""


def area_of(nodeid: str, markers: Iterable[str]) -> str:
    first = nodeid.split("::", 1)[0]
    if first in SYNTHETIC_AREAS:
        return first
    return HOSTS if "host" in set(markers) else PYTHON


def host_of(nodeid: str, properties: Iterable[tuple[str, str]]) -> str | None:
    hosts = [value for key, value in properties if key == "host" and value]
    if hosts:
        return hosts[-1]
    return split_param(nodeid)[1] or None


def classname_and_name(
    nodeid: str, area: str, properties: Iterable[tuple[str, str]] = ()
) -> tuple[str, str]:
    base, param = split_param(nodeid)
    parts = base.split("::")
    name = parts[-1] + (f"[{param}]" if param else "")
    if area in SYNTHETIC_AREAS:
        derived = ".".join(parts[1:-1]) or area
    else:
        module = parts[0].removesuffix(".py").replace("/", ".").replace("\\", ".")
        derived = ".".join([module, *parts[1:-1]]) if len(parts) > 1 else module
        if len(parts) == 1:
            # A collection error for a whole file: name it so it stays unique per file.
            name = "(collection)"
    properties = list(properties)
    classnames = [value for key, value in properties if key == "classname" and value]
    names = [value for key, value in properties if key == "name" and value]
    return (classnames[-1] if classnames else derived), (names[-1] if names else name)
