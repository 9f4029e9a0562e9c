"""JUnit XML rendering of a run record, through ``junit-xml`` with its known bugs fenced off.

Aimed at the real consumers (PITFALLS.md "JUnit consumers", Jenkins' junit-10.xsd):

* one ``<testsuite>`` per area (closures, loops, rust, release, python) and one per target
  host (``hosts.<host>``, ``hostname`` = the host);
* run provenance (commit, dirty tree, branch, domain, Nix and choirci versions, shard) as
  suite ``<properties>``, written by us because junit-xml keeps them in a dict (no repeated
  names);
* per-item provenance as ``[[PROPERTY|name=value]]`` lines at the top of the testcase's
  ``system-out`` (Jenkins' convention; the XSD forbids testcase properties);
* every failure/error with ``message`` and ``type``; one failure element per case (junit-xml
  would overwrite a second one);
* control characters and ANSI codes stripped, long logs cut with a pointer to the full log,
  times as fixed-point seconds (junit-xml writes ``str(float)``, i.e. ``1e-05``), and no
  ``disabled``/``skipped`` attributes where the XSD refuses them;
* classname + name unique across the file (GitLab drops duplicates).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable

import junit_xml  # type: ignore[import-untyped]

from choirci import text
from choirci.evidence import naming
from choirci.evidence.record import ItemResult, RunRecord, ShardRun, full_log_pointer

TEXT_LIMIT = 32_000
SUITE_ORDER = ("closures", "loops", "rust", "release", naming.HOSTS, naming.PYTHON)
FAILED = ("failed",)
ERRORED = ("error", "missing")
SKIPPED = ("skipped", "xfailed", "xpassed", "deselected")


def suite_key(item: ItemResult) -> tuple[int, str, str]:
    """(order, suite name, hostname) for the suite ``item`` belongs to."""
    order = SUITE_ORDER.index(item.area) if item.area in SUITE_ORDER else len(SUITE_ORDER)
    if item.area == naming.HOSTS:
        host = item.host or "unknown"
        return order, f"hosts.{host}", host
    return order, item.area, ""


def render(record: RunRecord) -> str:
    names = _unique_names(record)
    suites: dict[tuple[int, str, str], list[tuple[ShardRun, ItemResult, tuple[str, str]]]] = {}
    for (run, item), pair in zip(record.iter_items(), names, strict=True):
        suites.setdefault(suite_key(item), []).append((run, item, pair))
    root = ET.Element("testsuites", {"name": "choirci"})
    properties = run_properties(record)
    for key in sorted(suites):
        root.append(_suite(key, suites[key], properties))
    totals = {k: sum(int(s.get(k, "0")) for s in root) for k in ("tests", "failures", "errors")}
    for name, value in totals.items():
        root.set(name, str(value))
    root.set("time", text.seconds(sum(i.duration for i in record.items)))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def run_properties(record: RunRecord) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = [("status", record.status)]
    for run in record.runs:
        prov = run.provenance
        pairs += [
            ("shard", run.shard), ("commit", prov.commit or ""), ("branch", prov.branch or ""),
            ("dirty", _dirty(run)), ("dirtied_by_run", "; ".join(run.tree.dirtied)),
            ("domain", prov.domain or ""), ("promoted_sha", prov.promoted_sha or ""),
            ("nix_version", prov.nix_version or ""),
            ("choirci_version", prov.choirci_version or ""), ("run_status", run.status),
        ]
    pairs += [("missing_shard", name) for name in record.missing_shards]
    return [(k, _clean_value(v)) for k, v in dict.fromkeys(pairs) if v]


def _dirty(run: ShardRun) -> str:
    if run.tree.before is None:
        return "unknown"
    return "true" if run.tree.before or run.tree.dirtied else "false"


def _suite(key: tuple[int, str, str],
           members: list[tuple[ShardRun, ItemResult, tuple[str, str]]],
           properties: list[tuple[str, str]]) -> ET.Element:
    _order, name, hostname = key
    cases = [_case(run, item, pair) for run, item, pair in members]
    started = min((run.started for run, _, _ in members if run.started), default="")
    suite = junit_xml.TestSuite(text.clean(name), cases, hostname=hostname or None,
                                timestamp=started or None)
    element: ET.Element = suite.build_xml_doc()
    for attribute in ("disabled", "assertions"):  # not in junit-10.xsd
        element.attrib.pop(attribute, None)
    element.set("time", text.seconds(sum(item.duration for _, item, _ in members)))
    for case_element, (_run, item, _) in zip(element.iter("testcase"), members, strict=True):
        case_element.set("time", text.seconds(item.duration))
    element.insert(0, _properties(properties))
    return element


def _properties(pairs: Iterable[tuple[str, str]]) -> ET.Element:
    element = ET.Element("properties")
    for name, value in pairs:
        ET.SubElement(element, "property", {"name": name, "value": value})
    return element


def _case(run: ShardRun, item: ItemResult, names: tuple[str, str]) -> junit_xml.TestCase:
    classname, name = names
    pointer = full_log_pointer(item)
    case = junit_xml.TestCase(
        name, classname=classname, elapsed_sec=item.duration,
        stdout=_system_out(run, item, pointer) or None,
        stderr=text.cut(text.clean(item.stderr), TEXT_LIMIT, pointer) or None,
        allow_multiple_subelements=True,
    )
    message = text.clean(item.message) or item.outcome
    details = text.cut(text.clean(item.details), TEXT_LIMIT, pointer) or None
    if item.outcome in FAILED:
        case.add_failure_info(message, details, item.type or "failure")
    elif item.outcome in ERRORED:
        case.add_error_info(message, details, item.type or item.outcome)
    elif item.outcome in SKIPPED:
        case.add_skipped_info(f"{item.outcome}: {message}" if item.outcome != "skipped"
                              else message, details)
    return case


def _system_out(run: ShardRun, item: ItemResult, pointer: str) -> str:
    props = list(item.properties)
    if run.shard:
        props.append(("shard", run.shard))
    if item.host:
        props.append(("target_host", item.host))
    lines = [f"[[PROPERTY|{_clean_value(k)}={_clean_value(v)}]]" for k, v in props]
    body = text.cut(text.clean(item.stdout), TEXT_LIMIT, pointer)
    return "\n".join(lines + ([body] if body else []))


def _clean_value(value: str) -> str:
    # One line, and no "]]" that would end Jenkins' [[PROPERTY|...]] marker early.
    return text.clean(value).replace("\n", " ").replace("]]", "] ]").strip()


def _unique_names(record: RunRecord) -> list[tuple[str, str]]:
    """(classname, name) per item in record order, made unique across the file."""
    seen: set[tuple[str, str]] = set()
    out = []
    for run, item in record.iter_items():
        classname, name = text.clean(item.classname), text.clean(item.name)
        if (classname, name) in seen and run.shard:
            name = f"{name} [shard {run.shard}]"
        base, counter = name, 2
        while (classname, name) in seen:
            name, counter = f"{base} #{counter}", counter + 1
        seen.add((classname, name))
        out.append((classname, name))
    return out
