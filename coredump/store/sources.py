"""
Stored sources
==============

Copy the source files the crashing thread's frames name into the artifact directory
(``sources/<sha256>/<name>``, once per content), so the report shows the lines around the
crash on a machine without the build tree. A source path comes from DWARF and is not
trusted: only regular files inside the job's checkout are read (``symbols.sources``), each
file and the directory's total are capped.
"""

from __future__ import annotations

import hashlib
import os

from coredump.symbols.sources import SOURCES_DIR, read_regular_file, stored_name

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, List, Sequence

__all__ = ("store_sources", "MAX_FILE_BYTES", "MAX_TOTAL_BYTES", "SOURCES_DIR")

# A source file is a few hundred KiB at most; a bigger one is generated (an amalgamation)
# and is not copied: the artifact store pays for every byte.
MAX_FILE_BYTES = 1 << 20
# All the sources one run or harvest stores.
MAX_TOTAL_BYTES = 16 << 20


def _source_paths(crash) -> List[str]:
    """The distinct source paths of the crashing thread's frames, innermost first."""
    if crash.crashing_thread is None:
        return []
    paths: List[str] = []
    for f in crash.threads[crash.crashing_thread].frames:
        if f.source_path and f.source_path not in paths:
            paths.append(f.source_path)
    return paths


def store_sources(artifacts, record, crash, roots: Sequence[str]) -> List[Dict[str, Any]]:
    """Store the sources of `crash` that lie inside `roots` (the job's checkout: a DWARF
    path naming ~/.ssh/id_rsa must not land in a published artifact); returns crash.json's
    ``sources`` entries (``{"path", "file", "size", "sha256"}``) and adds each file to
    `record`'s files and digests. Files over the caps are left out, with one note."""
    entries, skipped = [], []
    for path in _source_paths(crash) if roots else []:
        found = read_regular_file(path, MAX_FILE_BYTES, roots)
        if found is None:
            continue
        if found.truncated:
            skipped.append(f"{os.path.basename(path)} (over {MAX_FILE_BYTES >> 20} MiB)")
            continue
        sha256 = hashlib.sha256(found.data).hexdigest()
        rel = stored_name(sha256, path)
        if not os.path.isfile(artifacts.path(rel)):
            if artifacts.source_bytes + len(found.data) > MAX_TOTAL_BYTES:
                skipped.append(f"{os.path.basename(path)} (the sources stored reached {MAX_TOTAL_BYTES >> 20} MiB)")
                continue
            artifacts.write_bytes(rel, found.data)
            artifacts.source_bytes += len(found.data)
        digest = {"size": len(found.data), "sha256": sha256}
        entries.append({"path": path, "file": rel, **digest})
        if rel not in record.files:
            record.files.append(rel)
        record.file_digests[rel] = digest
    if skipped:
        record.add_note(f"sources not stored: {', '.join(skipped)}")
    return entries
