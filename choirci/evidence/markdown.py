"""Markdown renderings: the gate report for a phase issue, the run report, the step summary.

All pure functions of the record (and gate verdicts). GitHub's JUnit reporters ignore
properties and ``hostname``, so what an operator must see (commit, dirty tree, release
record, failures) is repeated here. Excerpts are fenced with a fence longer than any
backtick run inside them, so a log can never break out of its block.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from choirci import text
from choirci.evidence.junit import location
from choirci.evidence.record import (
    BAD,
    ItemResult,
    RunRecord,
    counts_text,
    full_log_pointer,
    run_verdict,
)
from choirci.gates.verdicts import GateVerdict, ItemVerdict
from choirci.release.record import ReleaseRecord, release_record

EXCERPT_LIMIT = 1_500
STEP_SUMMARY_LIMIT = 60_000  # GitHub refuses step summaries over 1 MiB; reporters cap far lower
RULES = (
    "One active phase at a time.",
    "No gate bypasses.",
    "Evidence required for close.",
    "If gate fails, open defect issue and stop forward progression.",
)


def inline(value: str) -> str:
    """One line, safe inside a table cell."""
    return text.one_line(value, 200).replace("|", "\\|")


def fenced(body: str, limit: int, pointer: str) -> str:
    body = text.cut(text.clean(body).strip("\n"), limit, pointer)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{body}\n{fence}"


# --------------------------------------------------------------------------- shared blocks


def provenance_line(record: RunRecord) -> str:
    parts = []
    for run in record.runs:
        prov = run.provenance
        tree = ("dirtied by the run" if run.tree.dirtied else
                "unknown" if run.tree.before is None else
                "dirty" if run.tree.before else "clean")
        shard = f"shard `{run.shard}`: " if run.shard else ""
        parts.append(f"{shard}commit `{prov.commit or 'unknown'}` (branch {prov.branch or '?'}, "
                     f"tree {tree}), started {run.started or '?'}, run {run.status}")
    return "; ".join(parts) or "no run recorded"


def release_block(release: ReleaseRecord) -> list[str]:
    prompt = release.prompt
    result = ("not run (no release.prompt_url)" if prompt is None else
              f"run `{prompt.run_id or '-'}` {prompt.status or prompt.outcome}")
    return [
        "| grind commit SHA | promoted SHA | domain tested | prompt execution result |",
        "|---|---|---|---|",
        (f"| `{release.grind_sha or 'unknown'}` | `{release.promoted_sha or 'not recorded'}` | "
         f"{inline(release.domain or 'not recorded')} | {inline(result)} |"),
    ]


def tree_block(record: RunRecord) -> list[str]:
    lines = []
    for run in record.runs:
        which = f" (shard `{run.shard}`)" if run.shard else ""
        for entry in run.tree.dirtied:
            lines.append(f"- **The run dirtied the git tree**{which}: `{entry}` "
                         "(the next release manifest will refuse to build)")
        if run.tree.before:
            more = f" +{len(run.tree.before) - 10}" if len(run.tree.before) > 10 else ""
            lines.append(f"- The tree was already dirty when the run started{which}: "
                         + ", ".join(f"`{e}`" for e in run.tree.before[:10]) + more)
    return lines


SHOWN_LINES = 15  # a longer excerpt folds into <details> (GitHub renders it collapsed)
OUTPUT_TAIL = 20


def failures_block(items: Iterable[ItemResult], limit: int, max_items: int) -> list[str]:
    """Each failure: what, where (file:line when known) and how it died, then the tail of
    its own output; long logs fold so a pasted report stays readable on a GitHub issue."""
    bad = [item for item in items if item.outcome in BAD]
    lines: list[str] = []
    for item in bad[:max_items]:
        lines.append(f"#### `{item.nodeid}` ({item.outcome})")
        if item.message:
            lines.append(f"> {inline(item.message)}")
        where = location(item)
        if where is not None:
            lines += ["", f"at `{where[0]}" + (f":{where[1]}`" if where[1] else "`")]
        excerpt = item.details or item.stderr
        if excerpt.strip():
            lines += ["", *_foldable("failure", fenced(excerpt, limit, full_log_pointer(item)))]
        output = text.clean(item.stdout).strip("\n").splitlines()
        if output and item.details:
            tail = "\n".join(output[-OUTPUT_TAIL:])
            title = f"output (last {min(len(output), OUTPUT_TAIL)} of {len(output)} lines)"
            lines += ["", *_details(title, fenced(tail, limit, full_log_pointer(item)))]
        lines.append("")
    if len(bad) > max_items:
        lines.append(f"... and {len(bad) - max_items} more; see junit.xml / choirci.json")
    return lines


def _foldable(what: str, block: str) -> list[str]:
    count = block.count("\n") - 1
    if count <= SHOWN_LINES:
        return [block]
    return _details(f"{what} ({count} lines)", block)


def _details(summary: str, block: str) -> list[str]:
    return [f"<details><summary>{summary}</summary>", "", block, "", "</details>"]


def counts_line(record: RunRecord) -> str:
    return counts_text(record.counts())


# --------------------------------------------------------------------------- gate report


def _shown(names: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f" +{len(names) - limit}" if len(names) > limit else "")


def _tick(verdict: ItemVerdict) -> str:
    """``[x]`` only for a met item; what met it says whether choirci *checked* it (executed
    results) or a person *attested* it (a manual file naming this commit)."""
    box = "[x]" if verdict.met else "[ ]"
    item = verdict.item
    suffix = ""
    if verdict.met:
        parts = []
        if verdict.checked_by:
            parts.append(f"checked: {_shown(verdict.checked_by)}")
        if verdict.attested_by:
            parts.append(f"**attested by a person**: {_shown(verdict.attested_by)}")
        if not parts and item.require:
            parts.append("checked: " + ", ".join(s.describe() for s in item.require))
        suffix = " — " + "; ".join(parts) if parts else ""
    else:
        suffix = " — " + "; ".join(inline(r) for r in verdict.reasons[:4])
    tag = "" if item.required else " _(not gated)_"
    return f"- {box} {item.text}{tag}{suffix}"


def binding_lines(verdict: GateVerdict, binding: Mapping[str, Any] | None) -> list[str]:
    gate = verdict.gate
    binding = binding or {}
    definitions = (f"**custom gates** (`{gate.dir_digest[:12]}`), gate `{gate.digest[:12]}`"
                   if gate.custom else f"bundled gate `{gate.digest[:12]}`")
    record = str(binding.get("record_sha256") or "")[:12]
    lines = [f"- Judged: {f'record `{record}`, ' if record else ''}{definitions}"]
    if gate.allow_dirty:
        lines.append("- **This gate allows a dirty git tree** (`dirty_tree: allowed`)")
    if gate.user_tests:
        lines.append("- **This gate counts the workspace's own tests** (`user_tests: true`)")
    for entry in binding.get("order") or ():
        lines.append(f"- After `{entry['gate']}`: recomputed PASS for this commit from "
                     f"`{entry['evidence']}` (record `{str(entry['record_sha256'])[:12]}`)")
    return lines


def gate_report(verdict: GateVerdict, record: RunRecord,
                binding: Mapping[str, Any] | None = None) -> str:
    gate = verdict.gate
    headline = (f"**Verdict: {verdict.verdict.upper()}** "
                f"(gate `{gate.id}`, {counts_line(record)})")
    lines = [f"# {gate.title}", "", headline, "", provenance_line(record), ""]
    lines += binding_lines(verdict, binding) + [""]
    if gate.outcome:
        lines += [f"> Outcome: {gate.outcome}", ""]
    for section in gate.sections:
        lines += [f"## {section}", ""]
        lines += [_tick(v) for v in verdict.items if v.item.section == section]
        notes = [v for v in verdict.items if v.item.section == section and v.item.manual
                 and not v.met]
        for v in notes:
            lines.append(f"  - manual evidence: add {', '.join(f'`{m}`' for m in v.item.manual)}"
                         " (a line `commit: <the full commit id>`, or under "
                         "`manual/<commit>/`), then re-run `choirci gate`")
        lines.append("")
    if verdict.reasons:
        lines += ["## Why not pass", ""] + [f"- {inline(r)}" for r in verdict.reasons] + [""]
    lines += ["## Release record", ""] + release_block(release_record(record)) + [""]
    tree = tree_block(record)
    if tree:
        lines += ["## Tree state", ""] + tree + [""]
    failures = failures_block(record.items, EXCERPT_LIMIT, 20)
    if failures:
        lines += ["## Failures", ""] + failures
    lines += ["## Execution rules", ""] + [f"{i}. {r}" for i, r in enumerate(RULES, 1)]
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- run report


def gates_table(verdicts: Sequence[GateVerdict]) -> list[str]:
    if not verdicts:
        return []
    lines = ["| gate | verdict | items met |", "|---|---|---|"]
    for v in verdicts:
        required = [i for i in v.items if i.item.required]
        met = sum(1 for i in required if i.met)
        lines.append(f"| {v.gate.id} | {v.verdict} | {met}/{len(required)} |")
    return lines


def run_report(record: RunRecord, verdicts: Sequence[GateVerdict] = (),
               gate_note: str = "", limit: int = EXCERPT_LIMIT, max_failures: int = 20) -> str:
    verdict = run_verdict(record)
    lines = ["# choirci run", "", f"**Verdict: {verdict.verdict.upper()}** ({counts_line(record)})",
             "", provenance_line(record), ""]
    for reason in record.incomplete_reasons:
        lines.append(f"- incomplete: {inline(reason)}")
    if record.incomplete_reasons:
        lines.append("")
    lines += ["## Results by area", "", "| area | passed | not passed |", "|---|---|---|"]
    for area in sorted({item.area for item in record.items}):
        items = [i for i in record.items if i.area == area]
        ok = sum(1 for i in items if i.outcome == "passed")
        lines.append(f"| {area} | {ok} | {len(items) - ok} |")
    lines += ["", "## Release record", ""] + release_block(release_record(record)) + [""]
    tree = tree_block(record)
    if tree:
        lines += ["## Tree state", ""] + tree + [""]
    table = gates_table(verdicts)
    if table or gate_note:
        lines += ["## Gates", ""] + table + ([gate_note] if gate_note else []) + [""]
    failures = failures_block(record.items, limit, max_failures)
    if failures:
        lines += ["## Failures", ""] + failures
    return "\n".join(lines).rstrip() + "\n"


def step_summary(record: RunRecord, verdicts: Sequence[GateVerdict] = (),
                 gate_note: str = "") -> str:
    body = run_report(record, verdicts, gate_note, limit=600, max_failures=10)
    return text.cut(body, STEP_SUMMARY_LIMIT, "report.md in the evidence artifact")
