"""
A real Debian -dbg package compressed with dwz: lua5.4 with liblua5.4-0-dbg, whose debug
file names ``/usr/lib/debug/.dwz/x86_64-linux-gnu/lua5.4.debug`` by ``.gnu_debugaltlink``.
A real core of lua5.4 killed by SIGABRT inside ``table.sort``'s comparator (blocked reading
stdin, so the stack is the same each time), our frames in lua5.4 compared with gdb's.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from coredump.dwarf.supplementary import read_link
from coredump.elf.image import open_image
from tests.bundles import analyze_json
from tests.cores import core_skip_reason
from tests.gdb_oracle import run_gdb

LUA = "/usr/bin/lua5.4"
DEBUG_DIR = "/usr/lib/debug"

# The comparator says it is there, then blocks in read(2) until the test kills it.
SCRIPT = """
local t = {}
for i = 1, 64 do t[i] = (i * 37) % 64 end
table.sort(t, function(a, b)
  io.write("ready\\n"); io.flush()
  io.read("l")
  return a < b
end)
"""


def _lua_skip_reason():
    if not os.path.isfile(LUA):
        return f"{LUA} is not installed (Debian: lua5.4)"
    image = open_image(LUA)
    build_id = image.build_id if image is not None else None
    debug = os.path.join(DEBUG_DIR, ".build-id", build_id[:2], build_id[2:] + ".debug") if build_id else ""
    if not os.path.isfile(debug):
        return f"{debug or LUA + ' has no build-id'}: no debug file (Debian: liblua5.4-0-dbg)"
    if read_link(open_image(debug)) is None:
        return f"{debug} names no supplementary file: this liblua5.4-0-dbg is not dwz-compressed"
    return None


def _state(pid: int) -> str:
    stat = open(f"/proc/{pid}/stat").read()
    return stat[stat.rindex(")") + 2]


def _raise_core_limit() -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


@pytest.fixture(scope="module")
def lua_core(tmp_path_factory):
    reason = _lua_skip_reason() or core_skip_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("lua")
    (tmp / "sort.lua").write_text(SCRIPT)
    proc = subprocess.Popen([LUA, "sort.lua"], cwd=tmp, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, preexec_fn=_raise_core_limit)
    try:
        assert proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 60
        while _state(proc.pid) != "S":  # in read(2), inside the comparator
            assert time.monotonic() < deadline, "lua5.4 never blocked reading stdin"
            os.sched_yield()
        os.kill(proc.pid, signal.SIGABRT)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    cores = sorted(p for p in tmp.iterdir() if p.name == "core" or p.name.startswith("core."))
    assert cores, f"lua5.4 exited {proc.returncode} without a core"
    return cores[0]


def _in_lua(crash):
    lua = next(m for m in crash["modules"] if m["path"] == LUA)
    return int(lua["start"], 16), int(lua["end"], 16), lua


def test_lua_frames_inside_table_sort_match_gdb(lua_core, gdb):
    crash = analyze_json(lua_core, "--debug-dir", DEBUG_DIR)
    start, end, module = _in_lua(crash)
    assert module["supplementary_file"] and module["supplementary_file"].startswith(DEBUG_DIR)
    frames = crash["threads"][crash["crashing_thread"]]["frames"]
    ours = [(f["function"], os.path.basename(f["file"] or ""), f["line"], f["inline"]) for f in frames
            if f.get("module") == LUA]
    names = [f[0] for f in ours]
    assert not [n for n in names if n is None or re.fullmatch(r"\d+", n)], names  # never a string offset
    assert names[-1] == "_start" and "main" in names
    assert {"sort", "auxsort", "sort_comp", "lua_callk", "luaD_precall", "luaV_execute"} <= set(names)
    report = run_gdb(LUA, lua_core, gdb, extra=("-iex", f"set debug-file-directory {DEBUG_DIR}"))
    theirs = [(f.function, os.path.basename(f.file or ""), f.line, f.is_inline) for f in report.crashing.frames
              if f.frame_pc is not None and start <= f.frame_pc < end]
    assert ours == theirs, report.raw
    assert not [w for w in crash["warnings"] if "supplementary" in w]


def test_lua_without_its_supplementary_file_names_frames_from_the_symbol_table(lua_core, tmp_path):
    """The package's debug file copied alone into a debug directory without ``.dwz/``, its
    link's absolute path changed to one that does not exist: one warning naming the file,
    and .symtab names."""
    build_id = open_image(LUA).build_id
    debug = tmp_path / ".build-id" / build_id[:2] / (build_id[2:] + ".debug")
    debug.parent.mkdir(parents=True)
    shutil.copyfile(os.path.join(DEBUG_DIR, ".build-id", build_id[:2], build_id[2:] + ".debug"), debug)
    _rename_link(debug, b"/usr/lib/debug/.dwz/", b"/nonexistent-x/.dwz/")
    crash = analyze_json(lua_core, "--debug-dir", str(tmp_path))
    names = [f["function"] for f in crash["threads"][crash["crashing_thread"]]["frames"] if f.get("module") == LUA]
    assert "auxsort" in names and not [n for n in names if n and re.fullmatch(r"\d+", n)], names
    about = [w for w in crash["warnings"] if "supplementary" in w]
    assert len(about) == 1 and "/nonexistent-x/.dwz/x86_64-linux-gnu/lua5.4.debug" in about[0], about


def _rename_link(debug, old: bytes, new: bytes) -> None:
    """Rewrite the start of the path in ``.gnu_debugaltlink`` in place (`new` as long as `old`)."""
    assert len(new) == len(old)
    image = open_image(str(debug))
    _addr, offset, size, _type = image.get_section_info(".gnu_debugaltlink")
    data = bytearray(debug.read_bytes())
    assert data[offset:offset + len(old)] == old
    data[offset:offset + len(old)] = new
    debug.write_bytes(bytes(data))
