"""The on-disk parse cache: round trip, misses, corruption, concurrency, opt-out."""

import os
import pickle
import subprocess
import sys
import threading

from coredump.symbols import cache

BID = "0123456789abcdef0123456789abcdef01234567"


def test_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache.get(BID, "symtab.1") is None
    cache.put(BID, "symtab.1", ("x", [1, 2], [(1, 0, "f")]))
    assert cache.get(BID, "symtab.1") == ("x", [1, 2], [(1, 0, "f")])
    assert cache.get(BID, "cfi.1") is None
    path = cache.entry_path(BID, "symtab.1")
    assert path.startswith(str(tmp_path / "coredump")) and os.path.exists(path)
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.startswith(".tmp-")]


def test_corrupted_entries_are_misses(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.put(BID, "k", [1])
    path = cache.entry_path(BID, "k")
    for junk in (b"", b"garbage", open(path, "rb").read()[:10],
                 pickle.dumps(("coredump-cache", cache.CACHE_VERSION, "other", "k", [2]))):
        with open(path, "wb") as f:
            f.write(junk)
        assert cache.get(BID, "k") is None
    cache.put(BID, "k", [3])
    assert cache.get(BID, "k") == [3]


def test_disabled_and_bad_keys(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    cache.put(BID, "k", [1])
    assert cache.get(BID, "k") is None and not (tmp_path / "coredump").exists()
    monkeypatch.delenv("COREDUMP_CACHE")
    for build_id, kind in ((None, "k"), ("../../etc", "k"), (BID, "../x"), (BID, "")):
        cache.put(build_id, kind, [1])
        assert cache.get(build_id, kind) is None
    assert not (tmp_path / "coredump").exists()


def test_unwritable_cache_dir_is_ignored(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    cache.put(BID, "k", [1])
    assert cache.get(BID, "k") is None


def test_concurrent_writers(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    payload = list(range(20000))
    seen = []

    def work():
        for _ in range(20):
            cache.put(BID, "k", payload)
            got = cache.get(BID, "k")
            seen.append(got is None or got == payload)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(seen) and cache.get(BID, "k") == payload


def test_symbol_table_is_cached(tmp_path, monkeypatch, make_core):
    from coredump.elf.image import ElfImage
    from coredump.symbols.symtab import SymbolTable
    from tests.cores import BUILD

    make_core("O0", "segv")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    image = ElfImage(str(BUILD / "O0" / "segv"))
    first = SymbolTable(image)
    cache.flush()  # symbol tables are written later (at exit)
    assert len(first) and os.listdir(tmp_path / "coredump" / f"v{cache.CACHE_VERSION}")
    second = SymbolTable(image)
    assert second._entries == first._entries and second.source == first.source
    assert second.lookup(first._addrs[0]) == first.lookup(first._addrs[0])


def test_deferred_writes_are_read_back_and_reach_the_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    kinds = [f"lines.9.{i}" for i in range(20)]
    for i, kind in enumerate(kinds):
        cache.put(BID, kind, {"rows": list(range(i))}, wait=False)
    # Read-your-writes before they are written, then every entry on disk after flush.
    assert cache.get(BID, kinds[7]) == {"rows": list(range(7))}
    cache.flush()
    assert not cache._PENDING
    for i, kind in enumerate(kinds):
        path = cache.entry_path(BID, kind)
        assert os.path.exists(path)
        with open(path, "rb") as f:
            assert pickle.load(f)[-1] == {"rows": list(range(i))}
    assert not [p for p in os.listdir(os.path.dirname(path)) if p.startswith(".tmp-")]


def test_deferred_writes_are_off_with_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv("COREDUMP_CACHE", "0")
    cache.put(BID, "k", [1], wait=False)
    cache.flush()
    assert not (tmp_path / "coredump").exists() and not cache._PENDING


_DEFER = """
import sys
from coredump.symbols import cache
cache.put(sys.argv[1], "lines.9", [1, 2], wait=False)
print("threading" in sys.modules, cache.get(sys.argv[1], "lines.9"))
"""


def test_deferred_writes_start_no_thread_and_land_at_exit(tmp_path, monkeypatch):
    """A writer thread cost a cold analysis more CPU than the writes: the entry waits in
    the process (read back from there) and is written when the interpreter exits."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), COREDUMP_CACHE="1")
    run = subprocess.run([sys.executable, "-c", _DEFER, BID], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "[1,", "2]"]
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with open(cache.entry_path(BID, "lines.9"), "rb") as f:
        assert pickle.load(f)[-1] == [1, 2]


def test_deferred_writes_past_the_bound_are_written_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(cache, "_PENDING_MAX", 1000)
    cache.put(BID, "small", [0] * 10, wait=False)
    assert cache._PENDING and not os.path.exists(cache.entry_path(BID, "small"))
    cache.put(BID, "big", list(range(1000)), wait=False)
    assert not cache._PENDING
    assert os.path.exists(cache.entry_path(BID, "small")) and os.path.exists(cache.entry_path(BID, "big"))


class _Planted:
    """An entry someone else wrote: unpickling it would call os.mkdir(path)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_planted_entry_never_runs_code(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.put(BID, "k", [1])
    marker = tmp_path / "planted-code-ran"
    with open(cache.entry_path(BID, "k"), "wb") as f:
        pickle.dump(("coredump-cache", cache.CACHE_VERSION, BID, "k", _Planted(str(marker))), f)
    assert cache.get(BID, "k") is None
    assert not marker.exists()


def test_plain_data_and_arrays_round_trip(tmp_path, monkeypatch):
    import array

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    value = {"a": (1, 2.5, "s", b"b", None, True), "f": frozenset({3}), "arr": array.array("Q", [1, 2])}
    cache.put(BID, "plain", value)
    assert cache.get(BID, "plain") == value


def test_a_directory_others_can_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))
    cache.put(BID, "k", [1])
    assert cache.get(BID, "k") == [1]
    os.chmod(shared / "coredump", 0o777)
    cache._trusted_dir.cache_clear()
    try:
        assert cache.get(BID, "k") is None  # someone else could have written it
        cache.put(BID, "k2", [2])
        assert not os.path.exists(cache.entry_path(BID, "k2"))
    finally:
        os.chmod(shared / "coredump", 0o700)
        cache._trusted_dir.cache_clear()


def test_a_new_cache_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache.put(BID, "k", [1])
    assert os.stat(tmp_path / "coredump").st_mode & 0o777 == 0o700


def _analyze_json(core, exe, cache_home, enabled=True):
    """(function of each frame, fingerprint, build-id of the file --exe named) from a child."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "COREDUMP_CACHE": "1" if enabled else "0"}
    out = subprocess.run([sys.executable, "-m", "coredump.cli", "analyze", "--format", "json", "--exe", str(exe),
                          str(core)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    crash = json.loads(out.stdout)
    [file_build_id] = [m["file_build_id"] for m in crash["modules"] if m["file"] == str(exe)]
    return [f.get("function") for t in crash["threads"] for f in t["frames"]], crash["fingerprint"], file_build_id


def test_a_file_with_the_same_build_id_and_size_does_not_answer_for_the_genuine_one(tmp_path, make_core):
    """Issue #13 item 9: a copy of the executable with a symbol renamed in .strtab and .debug_str
    keeps the build-id and the size; analyzed first, it must not rename the frames (nor change
    the fingerprint) of a later analysis with the genuine file."""
    from tests.cores import BUILD

    core = make_core("O0", "segv")
    genuine = BUILD / "O0" / "segv"
    data = genuine.read_bytes()
    assert data.count(b"store_value\0") >= 2  # .strtab and .debug_str
    hostile = tmp_path / "hostile" / "segv"
    hostile.parent.mkdir()
    hostile.write_bytes(data.replace(b"store_value\0", b"ATTACKER_NA\0"))
    assert hostile.stat().st_size == genuine.stat().st_size

    expected = _analyze_json(core, genuine, tmp_path / "cold", enabled=False)
    assert "store_value" in expected[0]
    warm_home = tmp_path / "shared-cache"
    poisoned = _analyze_json(core, hostile, warm_home)
    assert "ATTACKER_NA" in poisoned[0]  # the hostile file's own analysis shows its own names
    assert poisoned[2] == expected[2]  # under the genuine file's build-id
    for _ in range(2):  # filling the cache for the genuine file, then reading it back
        assert _analyze_json(core, genuine, warm_home) == expected
    assert _analyze_json(core, hostile, warm_home) == poisoned  # and the other way round
