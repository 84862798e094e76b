"""coredump.unwind.fde_cache on a real static binary: gcc writes it no .eh_frame_hdr, so its
FDE index is kept in the parse cache."""

from coredump.elf.image import ElfImage
from coredump.symbols import cache
from coredump.unwind import fde_cache
from coredump.unwind.cfi_tables import FdeIndex, ModuleTables, _section
from tests.cores import BUILD

STATIC = str(BUILD / "static" / "segv")


def _offsets(tables: ModuleTables, pcs) -> list:
    return [tables.find_fde(pc)[1].offset for pc in pcs]


def test_a_second_analysis_reads_the_index_from_the_parse_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    image = ElfImage(STATIC)
    eh_frame = _section(image, ".eh_frame", True)
    assert _section(image, ".eh_frame_hdr", True) is None and fde_cache.cached_ranges(image, eh_frame) is None
    scanned = FdeIndex(eh_frame).entries
    pcs = [start for start, _, _ in scanned] + [end - 1 for _, end, _ in scanned]
    cold = _offsets(ModuleTables(image), pcs)
    cache.flush()

    again = ElfImage(STATIC)
    assert fde_cache.cached_ranges(again, _section(again, ".eh_frame", True)) == scanned and len(scanned) > 500
    assert _offsets(ModuleTables(again), pcs) == cold


def test_a_malformed_entry_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    image = ElfImage(STATIC)
    eh_frame = _section(image, ".eh_frame", True)
    scanned = FdeIndex(eh_frame).entries
    for bad in ([(1, 2)] * 3, [[1, 2, 3]], {"entries": scanned}, "x"):
        cache.flush()  # the good entry the last ModuleTables put, before the bad one replaces it
        cache.put(cache.image_key(image), fde_cache._kind(eh_frame), bad)
        assert fde_cache.cached_ranges(image, eh_frame) is None
        assert _offsets(ModuleTables(image), [scanned[0][0]]) == [scanned[0][2]]
