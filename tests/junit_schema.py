"""
The JUnit XML schema, as a check
================================

``violations(root)`` lists what breaks the Jenkins/Ant JUnit schema (Jenkins' junit-4.xsd, the
schema the JUnit plugins and CircleCI/GitLab parsers follow): element nesting and order,
required attributes, attributes each element may carry. Two things the schema has not and CI
tools are known to accept are allowed, and only those: ``file`` and ``line`` on a testcase
(GitLab and CircleCI read them), and a testcase's own ``<properties>`` first (pytest's
record_property writes them; Jenkins, GitLab and CircleCI read past them).
"""

from __future__ import annotations

from typing import List

__all__ = ("violations",)

# element -> (allowed attributes, required attributes, allowed children in order)
_RULES = {
    "testsuites": ({"name", "time", "tests", "failures", "disabled", "errors"}, set(), ["testsuite"]),
    "testsuite": ({"name", "tests", "failures", "errors", "time", "disabled", "skipped", "timestamp", "hostname",
                   "id", "package"}, {"name", "tests"}, ["properties", "testcase", "system-out", "system-err"]),
    "testcase": ({"name", "assertions", "time", "classname", "status", "file", "line"}, {"name"},
                 ["properties", "skipped", "error", "failure", "system-out", "system-err"]),
    "properties": (set(), set(), ["property"]),
    "property": ({"name", "value"}, {"name", "value"}, []),
    "failure": ({"type", "message"}, set(), []),
    "error": ({"type", "message"}, set(), []),
    "skipped": ({"message"}, set(), []),
    "system-out": (set(), set(), []),
    "system-err": (set(), set(), []),
}
# Elements that may occur once in their parent (the rest: any number).
_ONCE = {("testsuite", "properties"), ("testsuite", "system-out"), ("testsuite", "system-err"),
         ("testcase", "properties"), ("testcase", "skipped")}


def violations(root) -> List[str]:
    """What in the element tree `root` (xml.etree) breaks the schema; [] when it is valid."""
    out: List[str] = []
    if root.tag not in ("testsuites", "testsuite"):
        return [f"root is <{root.tag}>, not <testsuites> or <testsuite>"]
    stack = [root]
    while stack:
        element = stack.pop()
        rule = _RULES.get(element.tag)
        if rule is None:
            out.append(f"<{element.tag}> is no JUnit element")
            continue
        allowed, required, children = rule
        out += [f"<{element.tag}> has no {a}=" for a in sorted(required - set(element.attrib))]
        out += [f"<{element.tag}> may not have {a}=" for a in sorted(set(element.attrib) - allowed)]
        last, seen = -1, set()
        for child in element:
            if child.tag not in children:
                out.append(f"<{child.tag}> may not be in <{element.tag}>")
                continue
            where = children.index(child.tag)
            if where < last:
                out.append(f"<{child.tag}> comes after a later element in <{element.tag}>")
            if (element.tag, child.tag) in _ONCE and child.tag in seen:
                out.append(f"<{child.tag}> twice in <{element.tag}>")
            last, seen = max(last, where), seen | {child.tag}
            stack.append(child)
    return out
