import pytest

from coredump.capture.core_pattern import (
    SPECIFIERS,
    describe_core_pattern,
    parse_core_pattern,
    pipe_kind,
    read_core_pattern,
)

SYSTEMD = "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h"


@pytest.mark.parametrize("raw, uses_pid, name, expected", [
    ("core", False, "core", True),
    ("core", False, "core.123", False),
    ("core", True, "core.123", True),  # core_uses_pid appends .%p
    ("core", True, "core", False),
    ("core.%p.%E", False, "core.1234.!tmp!prog", True),
    ("core.%p.%E", True, "core.1234.!tmp!prog", True),  # %p present: nothing appended
    ("core.%p", True, "core.1234.1234", False),
    ("core.%p.%E", False, "core.x.!tmp!prog", False),
    ("core.%P", True, "core.77.77", True),  # only %p counts for core_uses_pid
    ("%e.core", False, "segv.core", True),
    ("%e.core", False, "sub/segv.core", False),  # a specifier never expands to '/'
    ("core-%e-%p-%i-%I-%u-%g-%s-%t-%d-%c-%C", False,
     "core-a-1-2-3-0-0-11-1700000000-0-18446744073709551615-1", True),
    ("core.%h.%f", False, "core.buildhost.prog", True),
    ("%%core%%", False, "%core%", True),
    ("core.%Z", False, "core.", True),  # format_corename drops an unknown specifier
    ("core.%", False, "core.", True),
    ("core\n", False, "core", True),  # the sysctl value ends in a newline
    ("core.*", False, "core.x", False),  # glob characters are literal
])
def test_matches(raw, uses_pid, name, expected):
    assert parse_core_pattern(raw, uses_pid).matches(name) is expected


def test_absolute_pattern_directory_and_depth():
    p = parse_core_pattern("/var/cores/core-%e-%p-%t")
    assert (p.is_absolute, p.directory, p.depth) == (True, "/var/cores", 1)
    assert p.matches("/var/cores/core-segv-1234-1700000000")
    assert not p.matches("/var/cores/sub/core-segv-1234-1700000000")
    assert not p.matches("core-segv-1234-1700000000")


def test_specifier_in_a_directory_component():
    p = parse_core_pattern("/cores/%u/%e/core.%p")
    assert (p.directory, p.depth) == ("/cores", 3)
    assert p.matches("/cores/1000/segv/core.42")


def test_relative_pattern_with_a_directory():
    p = parse_core_pattern("dumps/core.%p")
    assert (p.is_absolute, p.directory, p.depth) == (False, None, 2)
    assert p.matches("dumps/core.9")


def test_systemd_pipe():
    p = parse_core_pattern(SYSTEMD)
    assert p.is_pipe and p.regex is None
    assert p.pipe == ("/usr/lib/systemd/systemd-coredump", "%P", "%u", "%g", "%s", "%t", "%c", "%h")
    assert pipe_kind(p) == "systemd-coredump"
    assert "coredumpctl" in describe_core_pattern(p)


@pytest.mark.parametrize("raw, kind", [
    ("|/usr/share/apport/apport -p%p -s%s -c%c -d%d -P%P -u%u -g%g -- %E", "apport"),
    ("| /usr/bin/my-handler %p", "other"),
    ("core", None),
])
def test_pipe_kinds(raw, kind):
    assert pipe_kind(parse_core_pattern(raw)) == kind


def test_pipe_never_gets_a_pid_appended():
    assert parse_core_pattern("|/bin/handler", uses_pid=True).pipe == ("/bin/handler",)


def test_empty_pattern_writes_nothing():
    p = parse_core_pattern("")
    assert p.regex is None and not p.matches("core")
    assert "no core" in describe_core_pattern(p)


def test_describe_explains_each_specifier():
    text = describe_core_pattern(parse_core_pattern("core.%p.%E"))
    assert SPECIFIERS["p"][0] in text and SPECIFIERS["E"][0] in text
    assert "working directory" in text


def test_read_core_pattern(tmp_path):
    (tmp_path / "core_pattern").write_text("core.%e\n")
    (tmp_path / "core_uses_pid").write_text("1\n")
    p = read_core_pattern(str(tmp_path))
    assert p.raw == "core.%e" and p.uses_pid and p.matches("core.segv.12")


def test_read_this_machines_pattern():
    p = read_core_pattern()
    assert p.raw == open("/proc/sys/kernel/core_pattern").read().rstrip("\n")


def test_a_literal_percent_is_not_a_specifier_in_the_description():
    text = describe_core_pattern(parse_core_pattern("%%core%p"))
    assert "%p = " in text and "%c = " not in text


def test_a_relative_pattern_proves_the_crashed_process_cwd():
    """fs/coredump.c opens a relative core name against the dumping task's cwd."""
    assert parse_core_pattern("core").dumping_cwd("/w/build/core.77") == "/w/build"
    assert parse_core_pattern("cores/core.%p").dumping_cwd("/w/build/cores/core.77") == "/w/build"
    assert parse_core_pattern("/var/crash/core.%p").dumping_cwd("/var/crash/core.77") is None
    assert parse_core_pattern("|/usr/lib/systemd/systemd-coredump %P").dumping_cwd("/tmp/core") is None
