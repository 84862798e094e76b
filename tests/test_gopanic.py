"""The Go panic's value as the assertion (coredump/triage/gopanic.py, gofatal.py), on real
cores of c_samples/go_nil (GOTRACEBACK=crash): the oracle is the runtime's own ``panic: ...``
line on stderr (``fatal error: ...`` for runtime.throw and runtime.fatal). Hostile memory (a
message of bytes that are no text, a length past any message, a value that is no runtime
value) is edited into a copy of a real core (tests/coreedit.py)."""

import json
import re
import shutil
import struct
import subprocess
import sys

import pytest

from coredump.analysis import AnalyzeOptions, analyze_core
from coredump.dwarf.index import DwarfIndex
from coredump.dwarf.structs import find_named_types
from coredump.elf.image import ElfImage
from coredump.symbols.symtab import find_symbol
from coredump.triage.gopanic import MAX_MESSAGE
from tests.coreedit import find_in_memory, write_memory
from tests.go_samples import make_go_core

# runtime/panic.go printpanics: "panic: " then printpanicval, the first line the runtime prints.
_PANIC_LINE = re.compile(r"^panic: .*$", re.M)
# runtime/panic.go throw and fatal: print("fatal error: ", s, "\n")
_FATAL_LINE = re.compile(r"^fatal error: .*$", re.M)
MESSAGE = b"ledger petty cash: amount over the limit"  # go_nil method's, built at run time


def _analyze(run, core=None):
    return analyze_core(str(core or run.core), AnalyzeOptions(exe=str(run.exe)))


@pytest.mark.parametrize("mode", [(), ("divide",), ("panic",), ("method",), ("error",), ("index",), ("slice",)],
                         ids=["nil", "divide", "panic", "method", "error", "index", "slice"])
def test_the_assertion_is_the_panic_the_runtime_printed(mode):
    """A runtime error (nil dereference, division by zero: runtime.errorString; an index or a
    slice out of range: runtime.boundsError, which preprintpanics has made its Error() string),
    a string made by fmt.Sprintf or by concatenation, an errors.New error: the runtime's line,
    exactly."""
    run = make_go_core("go_nil", *mode)
    crash = _analyze(run)
    assert crash.assertion == _PANIC_LINE.search(run.stderr).group(0)
    assert not [w for w in crash.warnings if "Go panic" in w]


@pytest.mark.parametrize("mode", ["deadlock", "mapwrites"])
def test_a_fatal_error_is_the_line_the_runtime_printed(mode):
    """runtime.fatal (every goroutine asleep; two goroutines writing one map): no _panic, the
    text from the runtime's print ring; the reason says fatal error, and the crash machinery
    is left out of the signature."""
    run = make_go_core("go_nil", mode)
    crash = _analyze(run)
    assert crash.assertion == _FATAL_LINE.search(run.stderr).group(0)
    assert crash.classification == "fatal-error" and "Go runtime: fatal error" in crash.reason
    assert "fatalthrow" not in crash.signature
    assert not [w for w in crash.warnings if "Go fatal" in w]


def _descriptor(exe, name):
    """The address of `name`'s runtime type descriptor: ``type.*`` (Go 1.20: ``type:*``) plus
    its DW_AT_go_runtime_type, as the program's own DWARF gives them (go_nil is not PIE)."""
    image = ElfImage(str(exe))
    base = next(a for a in (find_symbol(image, s) for s in ("type:*", "type.*")) if a is not None)
    types = find_named_types(DwarfIndex(image), {name}, units=("runtime",), attributes=frozenset((0x2904,)))
    return base + types[name].attributes[0x2904]


def _bounds_core(tmp_path, mode, fields):
    """A copy of a real core of `mode` whose panic value is again the runtime's boundsError
    (``fields``: x, y, signed, code, as goPanicIndex made it, found in the goroutine's memory),
    as a core dumped before preprintpanics holds it; and the line the runtime printed."""
    run = make_go_core("go_nil", mode)
    line = _PANIC_LINE.search(run.stderr).group(0)
    core = _edited(run, tmp_path)
    text = line[len("panic: "):].encode()
    headers = [h for at in find_in_memory(core, text) for h in find_in_memory(core, struct.pack("<QQ", at, len(text)))]
    [eface] = [e for h in headers for e in find_in_memory(core, struct.pack("<QQ", _descriptor(run.exe, "string"), h))]
    value = find_in_memory(core, struct.pack("<qqBB", *fields))[0]
    write_memory(core, eface, struct.pack("<QQ", _descriptor(run.exe, "runtime.boundsError"), value))
    return run, core, line, value


@pytest.mark.parametrize("mode, fields", [("index", (5, 3, 1, 0)), ("slice", (-1, 3, 1, 3))])
def test_a_bounds_error_value_is_formatted_as_the_runtime_formats_it(tmp_path, mode, fields):
    """runtime/error.go boundsError.Error from x, y, signed and code: the format of its code,
    the negative one for a signed x below 0."""
    run, core, line, _ = _bounds_core(tmp_path, mode, fields)
    assert _analyze(run, core).assertion == line


@pytest.mark.parametrize("field, byte", [(17, 200), (16, 7)], ids=["code past the table", "signed not a bool"])
def test_a_bounds_error_that_is_no_runtime_value_gives_no_message(tmp_path, field, byte):
    run, core, _, value = _bounds_core(tmp_path, "index", (5, 3, 1, 0))
    write_memory(core, value + field, bytes([byte]))
    crash = _analyze(run, core)
    assert crash.assertion is None and crash.classification == "bounds"
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


@pytest.mark.parametrize("edit", ["index", "line"], ids=["index outside the ring", "no complete line"])
def test_a_print_ring_that_does_not_hold_together_gives_no_message(tmp_path, edit):
    """runtime.printBacklogIndex past the 512-byte ring, or the line's newline overwritten:
    no message, and the crash keeps its other facts."""
    run = make_go_core("go_nil", "deadlock")
    core = _edited(run, tmp_path)
    image = ElfImage(str(run.exe))
    if edit == "index":
        write_memory(core, find_symbol(image, "runtime.printBacklogIndex"), struct.pack("<q", 1 << 40))
    else:
        line = _FATAL_LINE.search(run.stderr).group(0).encode()
        ring = find_symbol(image, "runtime.printBacklog")
        [at] = [a for a in find_in_memory(core, line + b"\n") if ring <= a < ring + 512]
        write_memory(core, at + len(line), b"!")
    crash = _analyze(run, core)
    assert crash.assertion is None and crash.classification == "fatal-error"
    assert not [w for w in crash.warnings if "Go fatal" in w]
