"""The Go panic's value as the assertion (coredump/triage/gopanic.py), on real cores of
c_samples/go_nil (GOTRACEBACK=crash): the oracle is the runtime's own ``panic: ...`` line on
stderr. Hostile memory (a message of bytes that are no text, a length past any message)
is edited into a copy of a real core (tests/coreedit.py)."""

import json
import re
import shutil
import struct
import subprocess
import sys

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.triage.gopanic import MAX_MESSAGE
from tests.coreedit import find_in_memory, write_memory
from tests.go_samples import make_go_core

# runtime/panic.go printpanics: "panic: " then printpanicval, the first line the runtime prints.
_PANIC_LINE = re.compile(r"^panic: .*$", re.M)
MESSAGE = b"ledger petty cash: amount over the limit"  # go_nil method's, built at run time


def _analyze(run, core=None):
    return analyze_core(str(core or run.core), AnalyzeOptions(exe=str(run.exe)))


@pytest.mark.parametrize("mode", [(), ("divide",), ("panic",), ("method",), ("error",)],
                         ids=["nil", "divide", "panic", "method", "error"])
def test_the_assertion_is_the_panic_the_runtime_printed(mode):
    """A runtime error (nil dereference, division by zero: runtime.errorString), a string made
    by fmt.Sprintf or by concatenation, an errors.New error: the runtime's line, exactly."""
    run = make_go_core("go_nil", *mode)
    crash = _analyze(run)
    assert crash.assertion == _PANIC_LINE.search(run.stderr).group(0)
    assert not [w for w in crash.warnings if "Go panic" in w]


def test_crash_json_and_the_text_report_carry_it():
    run = make_go_core("go_nil", "method")
    line = _PANIC_LINE.search(run.stderr).group(0)
    cli = [sys.executable, "-m", "coredump.cli.main", "analyze", "--exe", str(run.exe), str(run.core)]
    out = subprocess.run([*cli, "--format", "json"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["assertion"] == line
    text = subprocess.run(cli, capture_output=True, text=True, timeout=120).stdout
    assert f"  message: {line}\n" in text


def test_without_dwarf_there_is_no_message_and_no_warning():
    """-ldflags=-w: no layouts to read g and _panic by; the crash keeps its other facts."""
    run = make_go_core("go_nil_nodwarf", "method")
    crash = _analyze(run)
    assert crash.assertion is None and crash.classification == "panic"
    assert not [w for w in crash.warnings if "Go panic" in w]


def _edited(run, tmp_path):
    core = tmp_path / "core"
    shutil.copyfile(run.core, core)
    return core


def test_message_bytes_that_are_no_text_are_replaced_and_escaped(tmp_path):
    run = make_go_core("go_nil", "method")
    core = _edited(run, tmp_path)
    [at] = find_in_memory(core, MESSAGE)
    hostile = b"\x1b[2J\xff\xfe\n#1 forged frame\x07".ljust(len(MESSAGE), b"\0")
    write_memory(core, at, hostile)
    crash = _analyze(run, core)
    assert crash.assertion == "panic: " + hostile.decode("utf-8", "replace")
    cli = [sys.executable, "-m", "coredump.cli.main", "analyze", "--exe", str(run.exe), str(core)]
    text = subprocess.run(cli, capture_output=True, text=True, timeout=120).stdout
    message = next(line for line in text.splitlines() if line.startswith("  message: "))
    assert "\x1b" not in text and "\x07" not in text and "forged frame" in message


@pytest.mark.parametrize("length, expected", [(1 << 40, None), (MAX_MESSAGE + 100, "cut")])
def test_a_length_past_any_message_is_bounded(tmp_path, length, expected):
    """The string header (pointer, length: runtime/string.go stringStruct) of the message
    given a length the runtime never printed: none at all past 1 GiB, else MAX_MESSAGE bytes
    (what follows the message in the heap) and an ellipsis."""
    run = make_go_core("go_nil", "method")
    core = _edited(run, tmp_path)
    [at] = find_in_memory(core, MESSAGE)
    [header] = find_in_memory(core, struct.pack("<QQ", at, len(MESSAGE)))
    write_memory(core, header + 8, struct.pack("<Q", length))
    crash = _analyze(run, core)
    if expected is None:
        assert crash.assertion is None
    else:
        assert crash.assertion.startswith("panic: " + MESSAGE.decode()) and crash.assertion.endswith("…")
        assert len(crash.assertion.encode()) <= len("panic: ") + 3 * MAX_MESSAGE + 3
    assert crash.classification == "panic" and not [w for w in crash.warnings if "Go panic" in w]
