"""
``char *`` targets as gdb prints them (coredump.dwarf.cstrings), against gdb itself: each
byte string below is compiled into a program's data and printed by ``gdb -batch -ex 'print
s[i]'`` from the executable (no process needed); our text must be gdb's, byte for byte.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from coredump.dwarf.cstrings import format_cstring

# Invalid UTF-8, truncated sequences (at the end and inside), glibc's 5- and 6-byte leads,
# surrogates, code points past U+10FFFF, the categories glibc's iswprint refuses or accepts,
# repeats of characters and of invalid bytes, and C escapes.
STRINGS = [
    b"\xfd", b"\xfdA", b"\xff", b"\xc3", b"\xc3A", b"A\xc3", b"AB\xc3", b"\xe2\x82", b"\xf0\x9f\x98", b"\xf8",
    b"\xfc", b"\x80", b"a\xfd", b"\xc0", b"\xc1", b"\xf5", b"\xc3\xa9", b"\xe2\x82\xac", b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80", b"\xe0\x80", b"\xc3\x80\x80", b"ab\xc3\xa9\xfd", b"\xfd\xbf", b"\xf8\x88\x80",
    b"\xc2\xa0", b"\xc2\x85", b"\xe2\x80\x8b", b"\xef\xbb\xbf", b"\xf0\x9f\x98\x80", b"\xe2\x80\xa8",
    b"\xe2\x80\xa9", b"\xcd\x81", b"\xfe\x80", b"\xff\xc3", b"\xee\x80\x80", b"\xcd\xb8", b"\xef\xbf\xbe",
    b"a" * 12 + b"\xc3", b"\t\xc3", b"\xc3\xa9\xc3\xa9\xc3", b"x" * 11 + b"y" * 10 + b"\xff" * 12,
    b"<script>alert(1)</script>\x1b[31mred\xff\xfe" + b"a" * 16, b"q\"uo\\te'", b"\a\b\t\n\v\f\r\x7f\x01",
]


def _c_literal(data: bytes) -> str:
    return '"' + "".join(f"\\{b:03o}" for b in data) + '"'


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the strings program")
    src = tmp_path_factory.mktemp("cstrings") / "strings.c"
    src.write_text("const char *s[] = {" + ", ".join(_c_literal(b) for b in STRINGS) + "};\n"
                   "int main(void) { return s[0][0]; }\n")
    exe = src.with_suffix("")
    subprocess.run([cc, "-g", "-O0", "-o", str(exe), str(src)], check=True)
    return exe


def test_strings_print_as_gdb_prints_them(program, gdb):
    args = [gdb, "-batch", "-nx", "-iex", "set width 0", "-iex", "set charset UTF-8"]
    for i in range(len(STRINGS)):
        args += ["-ex", f"print s[{i}]"]
    out = subprocess.run(args + [str(program)], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8"))
    lines = [line.split(" ", 3)[3] for line in out.stdout.splitlines() if line.startswith("$")]
    assert len(lines) == len(STRINGS), out.stderr
    for data, want in zip(STRINGS, lines):
        assert format_cstring(data) == want, data
