"""glibc's __abort_msg and uncaught C++ exceptions read from real cores."""

import pytest

from coredump.elf.core import open_core
from coredump.symbols.finder import FileFinder, FinderOptions
from coredump.target import Target
from coredump.triage.assertion import (
    decode_abort_message,
    demangle_type_name,
    find_abort_message,
    find_cxx_exception,
)


@pytest.fixture(scope="module")
def target_of(make_core):
    opened = []

    def get(program, variant="O0"):
        core = open_core(str(make_core(variant, program)))
        opened.append(core)
        return Target(core, FileFinder(FinderOptions(None, None, (), (), ())))
    yield get
    for core in opened:
        core.close()


VARIANTS = ["O0", "O2", "static"]


@pytest.mark.parametrize("variant", VARIANTS)
def test_failed_assert_message(target_of, variant):
    msg = decode_abort_message(find_abort_message(target_of("abort_assert", variant)))
    assert msg.kind == "assert"
    assert msg.expression == 'balance >= 0 && "balance must never go negative"'
    assert (msg.file, msg.line, msg.function) == ("abort_assert.c", 7, "check_balance")


@pytest.mark.parametrize("program, text, kind", [
    ("double_free", "free(): double free detected in tcache 2", "malloc"),
    ("heap_overflow", "malloc(): corrupted top size", "malloc"),
    ("fortify", "*** buffer overflow detected ***: terminated", "fortify"),
])
@pytest.mark.parametrize("variant", VARIANTS)
def test_glibc_fatal_messages(target_of, program, text, kind, variant):
    found = find_abort_message(target_of(program, variant))
    assert found == text
    assert decode_abort_message(found).kind == kind


@pytest.mark.parametrize("program", ["segv", "cxx_throw"])
def test_no_message_when_glibc_left_none(target_of, program):
    assert find_abort_message(target_of(program)) is None


@pytest.mark.parametrize("variant", VARIANTS)
def test_uncaught_cxx_exception_type_and_what(target_of, variant):
    target = target_of("cxx_throw", variant)
    regs = target.core.threads[0].registers
    exc = find_cxx_exception(target, regs, regs["rsp"])
    assert exc is not None
    assert exc.type_name == "std::runtime_error"
    assert exc.what == "config file not found: /etc/app.conf"


def test_no_cxx_exception_in_a_c_abort(target_of):
    target = target_of("abort_assert")
    regs = target.core.threads[0].registers
    assert find_cxx_exception(target, regs, regs["rsp"]) is None


def test_crash_json_carries_the_assertion(make_core):
    from coredump.analysis import analyze_core

    crash = analyze_core(str(make_core("O2", "cxx_throw")))
    assert crash.assertion == ("terminate called after throwing an instance of 'std::runtime_error': "
                               "config file not found: /etc/app.conf")


@pytest.mark.parametrize("text, kind", [
    ("*** stack smashing detected ***: terminated", "stack-protector"),
    ("corrupted size vs. prev_size", "malloc"),
    ("munmap_chunk(): invalid pointer", "malloc"),
    ("Fatal glibc error: something", "fatal"),
])
def test_decode_kinds(text, kind):
    assert decode_abort_message(text).kind == kind


def test_decode_assert_without_function():
    msg = decode_abort_message("prog: x.c:12: Assertion `p != NULL' failed.")
    assert (msg.expression, msg.file, msg.line, msg.function) == ("p != NULL", "x.c", 12, None)


@pytest.mark.parametrize("mangled, name", [
    ("St13runtime_error", "std::runtime_error"),
    ("N5store11ConfigErrorE", "store::ConfigError"),
    ("9BadConfig", "BadConfig"),
    ("NSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE",
     "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >"),
    ("i", "int"),
    ("not a type", "not a type"),  # kept as it is
])
def test_demangle_type_name(mangled, name):
    assert demangle_type_name(mangled) == name
