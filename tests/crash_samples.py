"""
Crash samples
=============

Realistic ``coredump.crash/1`` dicts for the report tests and ``scripts/screenshots.py``,
shaped like ``coredump analyze --format json`` output (addresses as hex strings), and a
writer for an artifact directory holding them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

__all__ = ("segv_crash", "abort_crash", "write_artifacts")

EXE = "/home/ci/project/build/bin/server"
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
LIBSTORE = "/home/ci/project/build/lib/libstore.so"

_REGISTERS = {
    "rax": "0x0", "rbx": "0x7ffd1c5a2e48", "rcx": "0x2a", "rdx": "0x54", "rsi": "0x54", "rdi": "0x0",
    "rbp": "0x7ffd1c5a2d10", "rsp": "0x7ffd1c5a2d10", "r8": "0x0", "r9": "0x7f3a9b1e2a80",
    "r10": "0x7f3a9b0f1c38", "r11": "0x246", "r12": "0x0", "r13": "0x7ffd1c5a2e58", "r14": "0x0",
    "r15": "0x7f3a9b2b4000", "rip": "0x5581c3a01139", "eflags": "0x10246", "cs": "0x33", "ss": "0x2b",
    "fs_base": "0x7f3a9b0c6740", "gs_base": "0x0",
}


def _frame(index, pc, function, file=None, line=None, module=EXE, trust="cfi", inline=False, offset=None):
    return {"index": index, "pc": pc, "function": function, "offset": offset, "module": module,
            "file": file, "line": line, "inline": inline, "trust": trust}


def _modules(mismatch: bool) -> List[Dict]:
    store = {"path": LIBSTORE, "start": "0x7f3a9b300000", "end": "0x7f3a9b31a000",
             "build_id": "5d1e0c2a9b7f44d0a1c3e2f6b8d9a0c1e2f3a4b5", "file": LIBSTORE,
             "file_build_id": "5d1e0c2a9b7f44d0a1c3e2f6b8d9a0c1e2f3a4b5", "debug_file": None, "status": "ok"}
    if mismatch:
        store.update(file_build_id="0badc0de0badc0de0badc0de0badc0de0badc0de", status="mismatch")
    return [
        {"path": EXE, "start": "0x5581c3a00000", "end": "0x5581c3a05000",
         "build_id": "9f3c1b7e2d4a6c8e0f1a3b5c7d9e1f2a3b4c5d6e", "file": EXE,
         "file_build_id": "9f3c1b7e2d4a6c8e0f1a3b5c7d9e1f2a3b4c5d6e", "debug_file": None, "status": "ok"},
        store,
        {"path": LIBC, "start": "0x7f3a9b000000", "end": "0x7f3a9b1d5000",
         "build_id": "93ac61ec5a8eb1396f9fbd350e3169a558528a40", "file": LIBC,
         "file_build_id": "93ac61ec5a8eb1396f9fbd350e3169a558528a40",
         "debug_file": "/usr/lib/debug/.build-id/93/ac61ec5a8eb1396f9fbd350e3169a558528a40.debug",
         "status": "ok"},
        {"path": "/usr/lib/x86_64-linux-gnu/libzstd.so.1", "start": "0x7f3a9b400000",
         "end": "0x7f3a9b4a0000", "build_id": "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d", "file": None,
         "file_build_id": None, "debug_file": None, "status": "missing"},
    ]


def _worker(tid: int, n: int) -> Dict:
    return {"tid": tid, "status": "ok", "truncated": False, "frames_omitted": 0, "frames": [
        _frame(0, f"0x7f3a9b0912{n}c", "__futex_abstimed_wait_common", "futex-internal.c", 57, LIBC,
               "context"),
        _frame(1, "0x7f3a9b093d40", "pthread_cond_wait", "pthread_cond_wait.c", 618, LIBC),
        _frame(2, "0x5581c3a012a8", "queue_pop", "src/queue.c", 88),
        _frame(3, "0x5581c3a01350", "worker_main", "src/worker.c", 41),
        _frame(4, "0x7f3a9b094ac3", "start_thread", "pthread_create.c", 442, LIBC),
        _frame(5, "0x7f3a9b126850", "clone3", "clone3.S", 81, LIBC),
    ]}


def segv_crash(pid: int = 4242, argv: Sequence[str] = (EXE, "--port", "8080"),
               function: str = "store_value", file: str = "src/store.c", mismatch: bool = True,
               warnings: Optional[List[str]] = None) -> Dict:
    """A null-pointer write in the main thread of a 3-thread server, frames from every trust level."""
    main = {"tid": pid, "status": "ok", "truncated": False, "frames_omitted": 0,
            "registers": dict(_REGISTERS), "frames": [
                _frame(0, "0x5581c3a01139", function, file, 42, trust="context", offset=13),
                _frame(1, "0x5581c3a0118c", "fill_list", "src/list.c", 17, offset=52),
                _frame(2, "0x7f3a9b3014d2", "record_insert", "src/record.h", 120, LIBSTORE, inline=True),
                _frame(3, "0x7f3a9b3014d2", "store_commit", "src/store_api.c", 311, LIBSTORE, offset=98),
                _frame(4, "0x5581c3a01402", "handle_request", "src/server.c", 208, trust="fp"),
                _frame(5, "0x5581c3a0155e", "main", "src/server.c", 377, trust="scan"),
                _frame(6, "0x7f3a9b029d90", None, None, None, LIBC, trust="scan"),
            ]}
    sig = "SIGSEGV in " + " < ".join([function, "fill_list", "record_insert"])
    return {
        "schema": "coredump.crash/1",
        "core": {"path": f"core.{pid}.server", "size": 2871296, "truncated": False},
        "process": {"pid": pid, "executable": EXE, "argv": list(argv), "arch": "x86_64"},
        "signal": {"number": 11, "name": "SIGSEGV", "code": 1, "code_name": "SEGV_MAPERR",
                   "address": "0x0", "description": "invalid write at address 0x0 (null pointer)"},
        "crashing_thread": 0,
        "threads": [main, _worker(pid + 1, 1), _worker(pid + 2, 2)],
        "modules": _modules(mismatch),
        "assertion": None, "reason": "null pointer dereference (write)", "classification": "null-deref",
        "signature": sig, "fingerprint": "a1b2c3d4e5f60718",
        "warnings": list(warnings if warnings is not None else
                         ["libzstd.so.1 not found: frames in it have no symbols",
                          f"thread {pid + 2}: stack memory at 0x7f3a9a7fe000 not in the core"]),
    }


def abort_crash(pid: int = 5151) -> Dict:
    """An assertion failure: abort() in libc, the message from __abort_msg."""
    crash = segv_crash(pid=pid, mismatch=False, warnings=[])
    crash["signal"] = {"number": 6, "name": "SIGABRT", "code": -6, "code_name": "SI_TKILL", "address": None,
                       "description": f"sent by tkill()/raise() from pid {pid}"}
    crash["assertion"] = "server: src/config.c:57: parse_port: Assertion `port > 0' failed."
    crash["reason"] = "assertion failed"
    crash["classification"] = "abort"
    crash["signature"] = "SIGABRT in parse_port < load_config < main"
    crash["threads"] = [copy.deepcopy(crash["threads"][0])]
    crash["threads"][0]["frames"] = [
        _frame(0, "0x7f3a9b0969fc", "__pthread_kill_implementation", "pthread_kill.c", 44, LIBC, "context"),
        _frame(1, "0x7f3a9b042476", "raise", "raise.c", 26, LIBC),
        _frame(2, "0x7f3a9b0287f3", "abort", "abort.c", 79, LIBC),
        _frame(3, "0x7f3a9b02871b", "__assert_fail_base", "assert.c", 92, LIBC),
        _frame(4, "0x5581c3a01a10", "parse_port", "src/config.c", 57),
        _frame(5, "0x5581c3a01b77", "load_config", "src/config.c", 102),
        _frame(6, "0x5581c3a0155e", "main", "src/server.c", 360),
    ]
    return crash


def write_artifacts(root: Path, crashes: Sequence[Dict], **summary) -> Path:
    """An artifact directory as ``coredump run`` leaves it, before rendering: summary.json
    and <id>/crash.json (plus an empty stand-in core.zst)."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for n, crash in enumerate(crashes, 1):
        crash_id = f"{n:03d}-{crash['process']['pid']}"
        (root / crash_id).mkdir()
        (root / crash_id / "crash.json").write_text(json.dumps(crash, indent=2))
        (root / crash_id / "core.zst").write_bytes(b"")
        entries.append({"id": crash_id, "signature": crash["signature"], "signal": crash["signal"]["name"],
                        "executable": crash["process"]["executable"], "crash_json": f"{crash_id}/crash.json",
                        "report_html": None, "core": f"{crash_id}/core.zst", "stored": True, "note": None})
    doc = {"schema": "coredump.summary/1", "command": ["make", "test"], "exit_status": 2,
           "host": "ci-runner-7", "started": "2024-05-14T02:11:05+00:00",
           "finished": "2024-05-14T02:13:41+00:00", "crashes": entries}
    doc.update(summary)
    (root / "summary.json").write_text(json.dumps(doc, indent=2))
    return root
