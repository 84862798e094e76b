"""
JSON
====

The ``coredump.crash/1`` object (documented in docs/json-schema.md): addresses as hex
strings, ``crashing_thread`` an index into ``threads``.
"""

from __future__ import annotations

from coredump.jsondoc import dumps_document
from coredump.model import CRASH_SCHEMA, Crash, Frame, Module, Thread

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Any, Dict, Optional

__all__ = ("SCHEMA", "crash_to_dict", "dumps")

SCHEMA = CRASH_SCHEMA


def _hex(value: Optional[int]) -> Optional[str]:
    return None if value is None else f"{value:#x}"


def _frame(f: Frame) -> Dict[str, Any]:
    out = {
        "index": f.index, "pc": _hex(f.pc), "function": f.function, "offset": f.symbol_offset,
        "module": f.module, "module_offset": _hex(f.module_offset), "file": f.file, "line": f.line,
        "inline": f.inline, "trust": f.trust.tag,
    }
    if f.mangled:
        out["mangled"] = f.mangled
    if f.source_path:  # only where known, as `mangled`
        out["source_path"] = f.source_path
    if f.tailcall:  # only where true, as `mangled` only where set: older readers see no change
        out["tailcall"] = True
    if f.jit:  # as `tailcall`: only where true
        out["jit"] = True
    if f.args is not None:  # only where DWARF described the frame and values were read
        out["args"] = [_variable(v) for v in f.args]
    if f.locals is not None:
        out["locals"] = [_variable(v) for v in f.locals]
    return out


def _variable(v) -> Dict[str, Any]:
    """name, type, value as gdb prints it; raw (a hex string, as addresses) where scalar."""
    out = {"name": v.name, "type": v.type, "value": v.value}
    if v.raw is not None:
        out["raw"] = _hex(v.raw & ((1 << 64) - 1)) if v.raw < 0 else _hex(v.raw)
    if v.entry is not None:
        out["entry"] = v.entry
    return out


def _thread(t: Thread, with_registers: bool) -> Dict[str, Any]:
    out: Dict[str, Any] = {"tid": t.tid, "status": t.status, "truncated": t.truncated,
                           "frames_omitted": t.frames_omitted,
                           "frames": [_frame(f) for f in t.frames]}
    if with_registers:
        out["registers"] = {k: _hex(v) for k, v in t.registers.items()}
    return out


def _module(m: Module) -> Dict[str, Any]:
    out = {"path": m.path, "start": _hex(m.start), "end": _hex(m.end), "build_id": m.build_id,
           "file": m.file, "file_build_id": m.file_build_id, "debug_file": m.debug_file,
           "status": m.status}
    if m.supplementary_file is not None:  # only where the debug file names one (dwz)
        out["supplementary_file"] = m.supplementary_file
    return out


def _core(core) -> Dict[str, Any]:
    out = {"path": core.path, "size": core.size, "truncated": core.truncated}
    if core.slim_omitted_bytes is not None:  # only for a core written by ``coredump slim``
        out["slimmed"] = True
        out["slim_omitted_bytes"] = core.slim_omitted_bytes
    return out


def crash_to_dict(crash: Crash) -> Dict[str, Any]:
    s = crash.signal
    return {
        "schema": SCHEMA,
        "core": _core(crash.core),
        "process": {"pid": crash.process.pid, "executable": crash.process.executable,
                    "argv": list(crash.process.argv), "arch": crash.process.arch},
        "signal": {"number": s.number, "name": s.name, "code": s.code, "code_name": s.code_name,
                   "address": _hex(s.address), "description": s.description,
                   "sender_pid": s.sender_pid},
        "crashing_thread": crash.crashing_thread,
        "threads": [_thread(t, i == crash.crashing_thread) for i, t in enumerate(crash.threads)],
        "modules": [_module(m) for m in crash.modules],
        "assertion": crash.assertion,
        "reason": crash.reason,
        "classification": crash.classification,
        "signature": crash.signature,
        "fingerprint": crash.fingerprint,
        "warnings": list(crash.warnings),
        "death_test": crash.death_test,
    }


def dumps(crash: Crash) -> str:
    return dumps_document(crash_to_dict(crash))
