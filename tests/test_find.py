import os
import time

import pytest

from coredump.capture.core_pattern import parse_core_pattern
from coredump.capture.find import find_cores, is_core_file
from tests.cores import BUILD


def test_is_core_file(tmp_path, make_core):
    assert is_core_file(str(make_core("O0", "segv")))
    assert not is_core_file(str(BUILD / "O0" / "segv"))  # ET_DYN
    (tmp_path / "core").write_text("not an ELF file at all")
    assert not is_core_file(str(tmp_path / "core"))
    (tmp_path / "short").write_bytes(b"\x7fELF\x02\x01")
    assert not is_core_file(str(tmp_path / "short"))
    assert not is_core_file(str(tmp_path / "missing"))


def place(path, core, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(core.read_bytes())
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return str(path)


def test_generic_names_anywhere_in_the_tree(tmp_path, make_core):
    core = make_core("O0", "segv")
    expected = [place(tmp_path / n, core, 1000 + i) for i, n in
                enumerate(["core", "a/core.123", "a/b/c/core.9.!usr!bin!x"])]
    place(tmp_path / "a" / "notacore", core)
    place(tmp_path / "a" / "core.txt", BUILD / "O0" / "segv")  # right name, not a core
    assert find_cores([str(tmp_path)]) == expected  # oldest first


def test_since_and_exclude(tmp_path, make_core):
    core = make_core("O0", "segv")
    old = place(tmp_path / "old" / "core", core, 1_000_000_000)
    new = place(tmp_path / "new" / "core", core)
    place(tmp_path / "out" / "core", core)
    since = int((time.time() - 60) * 1e9)
    assert find_cores([str(tmp_path)], since, exclude=[str(tmp_path / "out")]) == [new]
    assert old in find_cores([str(tmp_path)], 0)


def test_pattern_names_and_directories(tmp_path, make_core):
    core = make_core("O0", "segv")
    tree, elsewhere = tmp_path / "tree", tmp_path / "cores"
    relative = place(tree / "sub" / "segv.1234.dump", core, 1)
    absolute = place(elsewhere / "segv" / "dump-1234", core, 2)
    place(elsewhere / "segv" / "deeper" / "dump-1", core, 3)  # one level too deep
    assert find_cores([str(tree)], 0, parse_core_pattern("%e.%p.dump")) == [relative]
    assert find_cores([str(tree)], 0, parse_core_pattern(f"{elsewhere}/%e/dump-%p")) == [absolute]


def test_each_file_once(tmp_path, make_core):
    first = place(tmp_path / "core", make_core("O0", "segv"))
    os.link(first, tmp_path / "core.1")
    assert len(find_cores([str(tmp_path), str(tmp_path)])) == 1


def test_symlinks_not_followed(tmp_path, make_core):
    target = tmp_path / "real"
    place(target / "core", make_core("O0", "segv"))
    (tmp_path / "tree").mkdir()
    os.symlink(target, tmp_path / "tree" / "link")
    os.symlink(target / "core", tmp_path / "tree" / "core")
    assert find_cores([str(tmp_path / "tree")]) == []


def test_qemu_user_guest_core_names(tmp_path, make_qemu_core):
    """qemu-user names the guest's core qemu_<prog>_<date>-<time>_<pid>.core, whatever
    core_pattern says; other names of that shape that are not ET_CORE are not cores."""
    core = make_qemu_core("static", "segv")
    guest = place(tmp_path / "job" / "qemu_segv_20240102-030405_4242.core", core, 1000)
    place(tmp_path / "qemu_segv_20240102-030405_4243.core.txt", core, 1000)
    (tmp_path / "qemu_x_20240102-030405_1.core").write_text("not an ELF file")
    assert find_cores([str(tmp_path)], 0, parse_core_pattern("core")) == [guest]


def test_pruned_directories(tmp_path, make_core):
    core = make_core("O0", "segv")
    kept = place(tmp_path / "src" / "core", core)
    for skipped in (".git/core", "node_modules/x/core", "a/__pycache__/core", ".hg/core", ".svn/core",
                    "venv/lib/core", "out/core"):
        place(tmp_path / skipped, core)
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")  # PEP 405
    assert find_cores([str(tmp_path)], exclude=[str(tmp_path / "out")]) == [kept]


def test_directory_unchanged_since_is_not_listed(tmp_path, make_core):
    """A directory not modified since the moment gained no core then; with no
    subdirectory (st_nlink 2) it is not even listed."""
    core = make_core("O0", "segv")
    leaf = place(tmp_path / "leaf" / "core", core)
    since = time.time_ns() - 10**9
    if os.stat(tmp_path / "leaf").st_nlink != 2:
        pytest.skip("this filesystem does not count subdirectories in st_nlink: everything is listed")
    os.utime(tmp_path / "leaf", (1000, 1000))
    assert find_cores([str(tmp_path)], since) == []
    assert find_cores([str(tmp_path)], 0) == [leaf]
    place(tmp_path / "leaf" / "sub" / "core.2", core)  # a new subdirectory: listed again
    assert len(find_cores([str(tmp_path)], since)) == 2
