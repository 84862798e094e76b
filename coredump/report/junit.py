"""
JUnit
=====

Crashes as JUnit XML, one ``<testcase>`` per crash signature whose ``<failure>`` holds the
signature and the first crash's crashing thread, so CI test-report views (CircleCI
store_test_results, GitLab artifacts:reports:junit, GitHub test-report actions) list
crashes next to failed tests.

A test case is named by its signature alone, so the same crash is the same test in every run
(GitLab's "new failures", CircleCI's flaky-test view compare names across runs); pids, crash
ids and the count are ``<properties>``. ``file`` is relative to the repository root, as the
GitHub annotations' ``file=``.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from coredump.report import view
from coredump.report.sanitize import clean_xml

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ("render_junit", "crash_failure_text")


def crash_failure_text(crash: Dict) -> str:
    """The failure body: what happened, then the crashing thread as gdb prints it."""
    signal = crash.get("signal") or {}
    lines = [view.headline(crash)]
    for text in (crash.get("reason") or signal.get("description"), crash.get("assertion")):
        if text:
            lines.append(str(text))
    process = crash.get("process") or {}
    if process.get("executable"):
        lines.append(f"executable: {process['executable']} (pid {process.get('pid')})")
    if process.get("argv"):
        lines.append("argv: " + " ".join(str(a) for a in process["argv"]))
    thread = view.crashing_thread(crash)
    if thread is not None:
        lines += ["", f"Crashing thread (LWP {thread.get('tid')}):"]
        lines += ["  " + line for line in view.backtrace_lines(crash)]
    lines += [f"warning: {w}" for w in crash.get("warnings") or []]
    return "\n".join(lines)


def _case(suite: ET.Element, title: str, exe) -> ET.Element:
    # JUnit classname: dotted; test-report views group test cases by it.
    classname = "coredump." + (os.path.basename(str(exe)).replace(".", "_") if exe else "unknown")
    return ET.SubElement(suite, "testcase", classname=clean_xml(classname), name=clean_xml(title), time="0")


def _members(members: Sequence[Tuple[Optional[str], Optional[Dict], Dict]]) -> Dict[str, Any]:
    """The properties that tell one run's crashes of a test case apart."""
    pids = [((c or {}).get("process") or {}).get("pid") for _, c, _ in members]
    return {"crashes": str(len(members)), "crash_ids": ",".join(str(i) for i, _, _ in members if i),
            "pids": ",".join(str(p) for p in pids if p is not None)}


def _properties(case: ET.Element, values: Dict) -> None:
    """``<properties>`` of a testcase, before its ``<failure>`` (as pytest's record_property
    writes them): the crash's fingerprint and classification, for grouping across jobs."""
    present = [(k, v) for k, v in values.items() if v is not None and v != ""]
    if present:
        props = ET.SubElement(case, "properties")
        for key, value in present:
            ET.SubElement(props, "property", name=key, value=clean_xml(value))


def _unanalyzed_case(suite: ET.Element, title: str, members) -> None:
    """Crashes whose cores were stored but never analysed (no readable crash.json): still
    crashes of the job, so they still fail the suite, with the summary's note as the reason."""
    entry = members[0][2]
    note = str(entry.get("note") or "no readable crash.json")
    case = _case(suite, title, entry.get("executable"))
    _properties(case, _members(members))
    lines = [note] + [f"core: {e['core']}" for _, _, e in members if e.get("core")]
    failure = ET.SubElement(case, "failure", message=clean_xml(note), type="unanalyzed")
    failure.text = clean_xml("\n".join(lines))


def _title(crash: Optional[Dict], entry: Dict) -> Tuple[bool, str]:
    """(analysed, test case name) of one crash: its signature, the same in every run."""
    if crash is None:
        return False, f"{entry.get('signal') or 'crash'}: could not be analysed"
    return True, str(crash.get("signature") or view.headline(crash))


def _testcase(suite: ET.Element, signature: str, members, workspace: Optional[str]) -> None:
    crash = members[0][1]
    expected = members[0][2].get("expected")
    case = _case(suite, signature, (crash.get("process") or {}).get("executable"))
    _properties(case, {"fingerprint": crash.get("fingerprint"), "classification": crash.get("classification"),
                       **_members(members), "expected": expected})
    top = view.start_frame(crash)
    if top is not None and top.get("file") and top.get("line"):
        case.set("file", clean_xml(view.repo_file(top, workspace)))
        case.set("line", clean_xml(top["line"]))
    if expected:  # a crash the job means to have (a death test): a passed test case, told in its output
        ET.SubElement(case, "system-out").text = clean_xml(f"expected: {expected}\n" + crash_failure_text(crash))
        return
    signal = crash.get("signal") or {}
    failure = ET.SubElement(case, "failure", message=clean_xml(signature),
                            type=clean_xml(signal.get("name") or "crash"))
    failure.text = clean_xml(crash_failure_text(crash))


def render_junit(crashes: Sequence[Tuple], suite_name: str = "coredump", workspace: Optional[str] = None) -> str:
    """JUnit XML for (crash id, crash dict) pairs, or (crash id, crash dict or None, summary
    entry) triples, one test case per signature in first-seen order: a None crash (no readable
    crash.json) is a testcase whose failure is the entry's note. `workspace` is the repository
    root (default: the CI's, else the current directory). Every value passes ``clean_xml`` and
    ElementTree escapes it, so crash data cannot break the document."""
    workspace = workspace or view.workspace()
    groups: Dict[Tuple[bool, str], List] = {}
    for item in crashes:
        crash_id, crash = item[0], item[1]
        entry = item[2] if len(item) > 2 and isinstance(item[2], dict) else {}
        crash = crash if isinstance(crash, dict) or crash is None else {}
        key = _title(crash, entry) + (bool(entry.get("expected")) and crash is not None,)
        groups.setdefault(key, []).append((crash_id, crash, entry))
    failures = str(sum(1 for (_, _, expected) in groups if not expected))
    root = ET.Element("testsuites", name=suite_name, tests=str(len(groups)), failures=failures)
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(groups)),
                          failures=failures, errors="0", skipped="0", time="0")
    for (analysed, title, _expected), members in groups.items():
        if analysed:
            _testcase(suite, title, members, workspace)
        else:
            _unanalyzed_case(suite, title, members)
    ET.indent(root)  # Python 3.9+
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
