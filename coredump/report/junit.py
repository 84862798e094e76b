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


def _testcase(suite: ET.Element, crash_id: Optional[str], crash: Dict) -> None:
    signature = str(crash.get("signature") or view.headline(crash))
    exe = (crash.get("process") or {}).get("executable")
    # JUnit classname: dotted; test-report views group test cases by it.
    classname = "coredump." + (os.path.basename(str(exe)).replace(".", "_") if exe else "unknown")
    name = f"{signature} [{crash_id}]" if crash_id else signature
    case = ET.SubElement(suite, "testcase", classname=clean_xml(classname), name=clean_xml(name), time="0")
    top = view.top_source_frame(crash)
    if top is not None:
        case.set("file", clean_xml(top["file"]))
        case.set("line", clean_xml(top["line"]))
    signal = crash.get("signal") or {}
    failure = ET.SubElement(case, "failure", message=clean_xml(signature),
                            type=clean_xml(signal.get("name") or "crash"))
    failure.text = clean_xml(crash_failure_text(crash))


def render_junit(crashes: Sequence[Tuple[Optional[str], Dict]], suite_name: str = "coredump") -> str:
    """JUnit XML for (crash id, crash dict) pairs; every value passes ``clean_xml`` and
    ElementTree escapes it, so crash data cannot break the document."""
    root = ET.Element("testsuites", name=suite_name, tests=str(len(crashes)), failures=str(len(crashes)))
    suite = ET.SubElement(root, "testsuite", name=suite_name, tests=str(len(crashes)),
                          failures=str(len(crashes)), errors="0", skipped="0", time="0")
    for crash_id, crash in crashes:
        _testcase(suite, crash_id, crash if isinstance(crash, dict) else {})
    ET.indent(root)  # Python 3.9+
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
