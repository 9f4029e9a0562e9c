"""Which areas a ``pytest --grind`` command line collects, decided before anything runs.

* ``--area`` names them explicitly.
* Otherwise a selection implies its area: ``--closure`` the closures area, ``--rust-test`` the
  rust area (both: both). ``pytest --grind --rust-test X`` never builds closures or runs loops.
* ``-m EXPR`` is then evaluated against each area's markers (``nix``, ``loop``, ``rust``,
  ``host``): an area none of whose items could match is not collected at all, so
  ``-m nix`` never compiles Rust test binaries. A marker name that nothing registers (``-m
  nixx``) is a usage error naming the real ones, not a run that selects nothing.

Areas left out are recorded as deselected placeholders (see :mod:`choirci.narrowing`) with the
reason returned here, so a gate never passes on a narrowed run.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# pytest has no public API for -m expressions; this one is stable since pytest 6.
from _pytest.mark import expression as _expression
from _pytest.mark.expression import Expression

from choirci import areas
from choirci.errors import ConfigError

# Markers pytest itself registers; -m may name them (e.g. -m "not skip").
BUILTIN_MARKERS = ("skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings",
                   "tryfirst", "trylast")
_WORDS = {"and", "or", "not", "True", "False", "None"}
# What a malformed expression raises: ParseError up to pytest 8, SyntaxError from pytest 9.
_BAD_EXPRESSION: tuple[type[Exception], ...] = tuple(
    {SyntaxError, getattr(_expression, "ParseError", SyntaxError)})


@dataclass(frozen=True)
class AreaChoice:
    areas: tuple[str, ...] | None  # None: every area
    why: str  # how the choice was made, for "not selected (...)" reasons


def choose(explicit: Sequence[str], closures: Sequence[str], rust_tests: Sequence[str],
           markexpr: str, registered: Iterable[str]) -> AreaChoice:
    chosen: tuple[str, ...] | None
    if explicit:
        chosen, why = tuple(dict.fromkeys(explicit)), "--area"
    elif closures or rust_tests:
        implied = (("closures",) if closures else ()) + (("rust",) if rust_tests else ())
        chosen = implied
        why = " and ".join(flag for flag, used in (("--closure", closures),
                                                   ("--rust-test", rust_tests)) if used)
    else:
        chosen, why = None, ""
    if not markexpr.strip():
        return AreaChoice(chosen, why)
    expression = _compile(markexpr, registered)
    kept = tuple(area.name for area in areas.AREAS
                 if (chosen is None or area.name in chosen)
                 and expression.evaluate(_matcher(area.markers)))
    if chosen is None and len(kept) == len(areas.AREAS):
        return AreaChoice(None, "")
    flag = f"-m {markexpr!r}"
    return AreaChoice(kept, f"{why} and {flag}" if why else flag)


def _matcher(markers: tuple[str, ...]) -> Callable[..., bool]:
    def match(name: str, /, **kwargs: object) -> bool:
        return not kwargs and name in markers

    return match


def _compile(markexpr: str, registered: Iterable[str]) -> Expression:
    try:
        expression = Expression.compile(markexpr)
    except _BAD_EXPRESSION as exc:
        raise ConfigError(f"-m {markexpr!r}: not a marker expression ({exc}); "
                          "e.g. -m nix, -m \"rust or loop\"") from None
    known = sorted(set(registered) | set(BUILTIN_MARKERS))
    ours = sorted({m for area in areas.AREAS for m in area.markers})
    for name in marker_names(markexpr):
        if name not in known:
            hint = difflib.get_close_matches(name, known, n=1)
            did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"-m {markexpr!r}: no marker named {name!r}{did_you_mean}; "
                              f"choirci's markers: {', '.join(ours)}")
    return expression


def marker_names(markexpr: str) -> list[str]:
    """The marker names an expression mentions (keyword arguments in ``m(k=v)`` dropped)."""
    without_args = re.sub(r"\([^)]*\)", "", markexpr)
    return [word for word in re.findall(r"[A-Za-z_][\w.\-]*", without_args)
            if word not in _WORDS]


def registered_markers(lines: Iterable[str]) -> set[str]:
    """Names from pytest's ``markers`` ini lines (``name(args): help``)."""
    return {line.split(":", 1)[0].split("(", 1)[0].strip() for line in lines}
