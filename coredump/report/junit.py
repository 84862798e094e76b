"""
JUnit
=====

Crashes as JUnit XML, one ``<testcase>`` per crash whose ``<failure>`` holds the
signature and the crashing thread's backtrace, so CI test-report views (CircleCI
store_test_results, GitLab artifacts:reports:junit, GitHub test-report actions) list
crashes next to failed tests.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from typing import Dict, Optional, Sequence, Tuple

from coredump.report import view
from coredump.report.sanitize import clean_xml

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


def _case(suite: ET.Element, crash_id: Optional[str], title: str, exe) -> ET.Element:
    # JUnit classname: dotted; test-report views group test cases by it.
    classname = "coredump." + (os.path.basename(str(exe)).replace(".", "_") if exe else "unknown")
    name = f"{title} [{crash_id}]" if crash_id else title
    return ET.SubElement(suite, "testcase", classname=clean_xml(classname), name=clean_xml(name), time="0")


def _properties(case: ET.Element, values: Dict) -> None:
    """``<properties>`` of a testcase, before its ``<failure>`` (as pytest's record_property
    writes them): the crash's fingerprint and classification, for grouping across jobs."""
    present = [(k, v) for k, v in values.items() if v is not None and v != ""]
    if present:
        props = ET.SubElement(case, "properties")
        for key, value in present:
            ET.SubElement(props, "property", name=key, value=clean_xml(value))


def _unanalyzed_case(suite: ET.Element, crash_id: Optional[str], entry: Dict) -> None:
    """A crash whose core was stored but never analysed (no readable crash.json): it is still
    a crash of the job, so it still fails the suite, with the summary's note as the reason."""
    note = str(entry.get("note") or "no readable crash.json")
    case = _case(suite, crash_id, f"{entry.get('signal') or 'crash'}: could not be analysed",
                 entry.get("executable"))
    lines = [note] + ([f"core: {entry['core']}"] if entry.get("core") else [])
    failure = ET.SubElement(case, "failure", message=clean_xml(note), type="unanalyzed")
    failure.text = clean_xml("\n".join(lines))


def _testcase(suite: ET.Element, crash_id: Optional[str], crash: Dict) -> None:
    signature = str(crash.get("signature") or view.headline(crash))
    case = _case(suite, crash_id, signature, (crash.get("process") or {}).get("executable"))
    _properties(case, {"fingerprint": crash.get("fingerprint"), "classification": crash.get("classification")})
    top = view.top_source_frame(crash)
    if top is not None:
        case.set("file", clean_xml(top["file"]))
        case.set("line", clean_xml(top["line"]))
    signal = crash.get("signal") or {}
    failure = ET.SubElement(case, "failure", message=clean_xml(signature),
                            type=clean_xml(signal.get("name") or "crash"))
    failure.text = clean_xml(crash_failure_text(crash))


def render_junit(crashes: Sequence[Tuple], suite_name: str = "coredump") -> str:
    """JUnit XML for (crash id, crash dict) pairs, or (crash id, crash dict or None, summary
    entry) triples: a None crash (no readable crash.json) is a testcase whose failure is the
    entry's note. Every value passes ``clean_xml`` and ElementTree escapes it, so crash data
    cannot break the document."""
    root = ET.Element("testsuites", name=suite_name, tests=str(len(crashes)), failures=str(len(crashes)))
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(crashes)),
                          failures=str(len(crashes)), errors="0", skipped="0", time="0")
    for item in crashes:
        crash_id, crash = item[0], item[1]
        entry = item[2] if len(item) > 2 and isinstance(item[2], dict) else {}
        if crash is None:
            _unanalyzed_case(suite, crash_id, entry)
        else:
            _testcase(suite, crash_id, crash if isinstance(crash, dict) else {})
    ET.indent(root)  # Python 3.9+
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
