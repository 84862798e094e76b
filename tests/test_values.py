"""
Frames' arguments against gdb's ``bt`` (issue #17 items 1 and 4), on real kernel cores of
c_samples at -O0 and -O2: where gdb prints a value without an entry value we print the same
text; where gdb says ``<optimized out>`` so do we; where gdb found the value only through an
entry value (``x=x@entry=1``, ``x@entry=1``) we print that value or ``<optimized out>``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

import pytest

from coredump.report.view import name_before_args
from tests.cores import BUILD

PROGRAMS = ["segv", "fpe", "abort_assert", "threads", "sighandler", "illegal", "uselib", "args", "wild", "cxx_throw",
            "cxx_throw_kinds", "double_free", "heap_overflow", "int_overflow", "misaligned", "recursion", "trap",
            "tail_paths", "name_length", "rodata_write", "fortify",
            "div_overflow", "mutual_recursion"]
CASES = [(v, p) for v in ("O0", "O2") for p in PROGRAMS]
OPTIMIZED_OUT = "<optimized out>"
# Innermost frames per thread compared: gdb takes minutes over the 80,000 frames of
# mutual_recursion, and our walk leaves a gap inside so deep a stack anyway.
GDB_FRAMES = 200
_FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(.+?) \(")
_SYMBOL = re.compile(r" <[^<>]*>")


def analyze(core, exe, *extra) -> Dict:
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json",
                          "--exe", str(exe), *extra, str(core)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    return json.loads(out.stdout)


def gdb_backtraces(gdb, exe, core) -> Dict[int, List[Tuple[str, Optional[List[str]]]]]:
    """Per LWP, per frame: (function, the argument texts gdb printed)."""
    out = subprocess.run([gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set width 0",
                          "-iex", "set height 0", "-iex", "set backtrace past-main on", "-ex",
                          f"thread apply all bt {GDB_FRAMES}", str(exe), str(core)], capture_output=True, text=True,
                         timeout=300)
    threads: Dict[int, list] = {}
    lwp = None
    for line in out.stdout.splitlines():
        m = re.match(r"^Thread \d+ \(.*?\bLWP (\d+)\)", line)
        if m:
            lwp = int(m.group(1))
            threads[lwp] = []
            continue
        m = _FRAME.match(line)
        if m and lwp is not None:
            threads[lwp].append((m.group(2), split_args(line[m.end():])))
    return threads


def split_args(text: str) -> List[str]:
    """gdb's ``a=1, b=0x2 "x, y")...`` up to the closing parenthesis, split at top-level commas."""
    parts, depth, quote, start, i = [], 0, None, 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in "(<":
            depth += 1
        elif c in ")>" and depth:
            depth -= 1
        elif c == ")":
            break
        elif c == "," and text[i + 1:i + 2] == " " and re.match(r"\w+[=@]", text[i + 2:]):
            parts.append(text[start:i])
            start = i + 2
        i += 1
    last = text[start:i]
    return parts + [last] if last else parts


def gdb_arg(text: str) -> Tuple[str, str, bool]:
    """(name, value, whether gdb found it through an entry value)."""
    m = re.match(r"^(\w+)=\1@entry=(.*)$", text) or re.match(r"^(\w+)@entry=(.*)$", text)
    if m:
        return m.group(1), m.group(2), True
    name, _, value = text.partition("=")
    return name, value, False


def assert_args_match(ours: Dict, gdb: List[str], where: str, strict: bool):
    """`strict`: every value gdb prints, we print (an -O0 frame of the program: fbreg
    locations). Otherwise a value gdb computed may be <optimized out> here: DW_OP_entry_value
    (which gdb also evaluates inside expressions, without printing @entry) and SSE registers
    are not read yet; a different value never passes."""
    mine = {a["name"]: a["value"] for a in ours.get("args") or []}
    # Our entry values (name@entry) are gdb's: never one where gdb has none, never another.
    gdb_entries = {gdb_arg(t)[0]: _SYMBOL.sub("", gdb_arg(t)[1]) for t in gdb if gdb_arg(t)[2]}
    for a in ours.get("args") or []:
        if "entry" in a:
            assert gdb_entries.get(a["name"]) == _SYMBOL.sub("", a["entry"]), \
                f"{where}: {a['name']}@entry={a['entry']}, gdb has {gdb}"
    seen = set()
    for text in gdb:
        name, value, entry = gdb_arg(text)
        if name not in mine or name in seen:
            continue  # a `name=..., name@entry=...` pair: the second half has no parameter of its own
        seen.add(name)
        got = mine[name]
        # gdb's <symbol> after a pointer may pick another alias of the same address (__GI__IO_puts, puts).
        got_cmp, want_cmp = _SYMBOL.sub("", got), _SYMBOL.sub("", value)
        if value == OPTIMIZED_OUT:
            assert got == OPTIMIZED_OUT, f"{where}: {name}={got}, gdb has {text}"
        elif entry or not strict:
            assert got_cmp in (want_cmp, OPTIMIZED_OUT), f"{where}: {name}={got}, gdb has {text}"
        else:
            assert got_cmp == want_cmp, f"{where}: {name}={got}, gdb has {text}"


@pytest.mark.parametrize("variant,program", CASES, ids=[f"{v}-{p}" for v, p in CASES])
def test_arguments_match_gdb(make_core, gdb, variant, program):
    core = make_core(variant, program)
    exe = BUILD / variant / program
    crash = analyze(core, exe)
    report = gdb_backtraces(gdb, exe, core)
    compared = 0
    for thread in crash["threads"]:
        frames = report.get(thread["tid"], [])
        ours_left = list(thread["frames"])
        for function, args in frames:
            # Frames are paired by name in order: the tail-call frames each side infers may differ.
            # (A C++ frame is named as our bt line names it: without its parameter list.)
            k = next((k for k, f in enumerate(ours_left) if f.get("function")
                      and name_before_args(f["function"]) == function), None)
            if k is None:
                continue
            ours, ours_left = ours_left[k], ours_left[k + 1:]
            if not args:
                continue
            assert "args" in ours, f"{variant}-{program} #{ours['index']}: gdb prints {function} ({args})"
            strict = variant == "O0" and ours.get("module") == crash["process"]["executable"]
            assert_args_match(ours, args, f"{variant}-{program} #{ours['index']} {function}", strict)
            compared += len(args)
    assert compared, "gdb printed no arguments to compare"


def test_the_program_s_own_frames_have_their_o0_values(make_core):
    """The -O0 frames carry every argument (fbreg locations): none is <optimized out>."""
    crash = analyze(make_core("O0", "fpe"), BUILD / "O0" / "fpe")
    frames = crash["threads"][crash["crashing_thread"]]["frames"]
    assert [(a["name"], a["value"], a["type"], a.get("raw")) for a in frames[0]["args"]] == \
        [("total", "100", "int", "0x64"), ("count", "0", "int", "0x0")]
    assert frames[1]["function"] == "report" and frames[1]["args"] == [
        {"name": "argc", "type": "int", "value": "1", "raw": "0x1"}]


def test_hostile_string_argument_is_escaped_everywhere(make_core, tmp_path):
    core = make_core("O0", "args")
    exe = BUILD / "O0" / "args"
    crash = analyze(core, exe)
    name = crash["threads"][crash["crashing_thread"]]["frames"][0]["args"][0]
    assert name["type"] == "const char *"
    assert name["value"].endswith('"<script>alert(1)</script>\\033[31mred\\377\\376", \'a\' <repeats 16 times>')
    text = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--exe", str(exe), str(core)],
                          capture_output=True, text=True, timeout=300).stdout
    assert "\x1b" not in text and "\\033[31mred\\377\\376" in text
    assert "bad=0x10 <error: Cannot access memory at address 0x10>" in text
    assert "initial=65 'A', flag=true, color=BLUE" in text and "pair=..." in text
    doc = tmp_path / "crash.json"
    doc.write_text(json.dumps(crash))
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "report", "-o", str(tmp_path / "out"),
                          str(doc)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    page = next((tmp_path / "out").rglob("report.html")).read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_no_values_gives_the_output_without_values(make_core):
    core = make_core("O0", "fpe")
    exe = BUILD / "O0" / "fpe"
    crash = analyze(core, exe, "--no-values")
    assert all("args" not in f and "locals" not in f for t in crash["threads"] for f in t["frames"])
    text = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--no-values", "--exe", str(exe),
                           str(core)], capture_output=True, text=True, timeout=300).stdout
    assert "average (fpe.c:6)" in text


def test_crashing_thread_top_frames_list_their_locals(make_core):
    crash = analyze(make_core("O0", "segv"), BUILD / "O0" / "segv")
    frames = crash["threads"][crash["crashing_thread"]]["frames"]
    assert [(v["name"], v["value"]) for v in frames[1]["locals"]] == [("i", "3")]  # fill_list's loop counter
    assert frames[2]["locals"][0]["name"] == "nodes" and frames[2]["locals"][0]["type"] == "struct node **"


def gdb_frame_args(gdb, exe, core, index: int) -> Dict[str, str]:
    """name -> value text gdb's ``bt`` prints for frame `index` of the crashing thread."""
    frames = [args for _, args in next(iter(gdb_backtraces(gdb, exe, core).values()))]
    return {gdb_arg(t)[0]: gdb_arg(t)[1] for t in reversed(frames[index])}


def test_a_double_in_xmm0_is_read_from_nt_prfpreg(make_core, gdb):
    """-O2 passes report()'s double ratio in xmm0 (psABI §3.2.3); frame 0's xmm registers are
    the core's NT_PRFPREG (the fxsave area): the value gdb prints, not <optimized out>."""
    core, exe = make_core("O2", "args"), BUILD / "O2" / "args"
    ours = {a["name"]: a for a in analyze(core, exe)["threads"][0]["frames"][0]["args"]}
    assert ours["ratio"]["type"] == "double"
    assert ours["ratio"]["value"] == gdb_frame_args(gdb, exe, core, 0)["ratio"] == "1.5"


def test_entry_values_are_gdb_s(make_core, gdb):
    """-O2 withdraw's balance is only an entry value (DW_OP_entry_value of rdi, from main's
    DW_TAG_call_site_parameter), and glibc's __assert_fail gets its arguments' entry values
    from check_balance's call site in the executable: each is gdb's name@entry value."""
    core, exe = make_core("O2", "abort_assert"), BUILD / "O2" / "abort_assert"
    frames = analyze(core, exe)["threads"][0]["frames"]
    gdb_frames = [args for _, args in next(iter(gdb_backtraces(gdb, exe, core).values()))]
    checked = 0
    # glibc's frame has arguments only with its debug file (libc6-dbg), and is then named
    # by DWARF; without it, only the executable's entry values are there to compare.
    glibc = any(f["function"] == "__GI___assert_fail" for f in frames)
    for function in ("withdraw", "__GI___assert_fail") if glibc else ("withdraw",):
        ours = next(f for f in frames if f["function"] == function)
        theirs = {gdb_arg(t)[0]: gdb_arg(t)[1] for t in gdb_frames[ours["index"]] if gdb_arg(t)[2]}
        for arg in ours["args"]:
            if "entry" in arg:
                assert _SYMBOL.sub("", arg["entry"]) == _SYMBOL.sub("", theirs[arg["name"]])
                checked += 1
    assert checked >= (4 if glibc else 1)
    text = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--exe", str(exe), str(core)],
                          capture_output=True, text=True, timeout=300).stdout
    assert "withdraw (balance=balance@entry=10, amount=<optimized out>)" in text


@pytest.mark.parametrize("command", ["run", "harvest"])
def test_run_and_harvest_no_values_store_no_arguments(tmp_path, command):
    """`coredump run --no-values` (the fast entry) and `harvest --no-values` (click) store a
    crash.json without args or locals; without the flag it has them."""
    from tests import cores

    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    cores.build_samples()
    exe = str(BUILD / "O0" / "fpe")
    found = {}
    for flag in ((), ("--no-values",)):
        work = tmp_path / ("plain" if not flag else "novalues")
        work.mkdir()
        if command == "harvest":
            cores.run_crash([exe], work)
            argv = ["harvest", "-o", "out", *flag]
        else:
            argv = ["run", "-o", "out", *flag, "--", exe]
        subprocess.run([sys.executable, "-c", "from coredump.cli.entry import main; main()", *argv], cwd=work,
                       preexec_fn=cores._raise_core_limit, capture_output=True, timeout=300)
        crash = json.loads(next((work / "out").rglob("crash.json")).read_text())
        found[bool(flag)] = [f for t in crash["threads"] for f in t["frames"] if "args" in f or "locals" in f]
    assert found[False] and found[True] == []


@pytest.mark.parametrize("variant", ["O0", "O2"])
def test_cxx_frames_are_named_as_gdb_s_bt_names_them(make_core, gdb, variant):
    """With its arguments printed, a C++ frame is ``store::load_config (cfg=...)`` in gdb's bt,
    not the demangled ``store::load_config(Config const&) (cfg=...)``: our text lines of the
    program's own frames read as gdb's, name and arguments."""
    core, exe = make_core(variant, "cxx_throw"), BUILD / variant / "cxx_throw"
    text = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--exe", str(exe), str(core)],
                          capture_output=True, text=True, timeout=300).stdout
    line = r"#\d+\s+(?:0x[0-9a-f]+ in )?(\S+::.+? \(.*?\) at \S+:\d+)"  # the C++ frames with DWARF
    ours = {m.group(1) for m in re.finditer(r"^\s*" + line, text, re.M)}
    gdb_out = subprocess.run([gdb, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set width 0",
                              "-ex", "bt", str(exe), str(core)], capture_output=True, text=True, timeout=300).stdout
    theirs = {m.group(1) for m in re.finditer("^" + line, gdb_out, re.M)}
    assert theirs, gdb_out
    assert ours == theirs, text


def test_name_before_args_keeps_what_names_the_function():
    assert name_before_args("std::vector<int, std::allocator<int> >::at(unsigned long) const") == \
        "std::vector<int, std::allocator<int> >::at"
    assert name_before_args("Foo::operator()(int) &&") == "Foo::operator()"
    assert name_before_args("f()") == "f"
    assert name_before_args("(anonymous namespace)::g(int)") == "(anonymous namespace)::g"
    assert name_before_args("main.(*ledger).post") == "main.(*ledger).post"
    assert name_before_args("average") == "average"
