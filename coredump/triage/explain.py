"""
Explain
=======

Fill in a crash's assertion, reason, classification, signature and fingerprint from the
facts already gathered and the target's memory.
"""

from __future__ import annotations

from coredump.model import Crash
from coredump.record import replace
from coredump.triage.assertion import decode_abort_message, find_abort_message, find_cxx_exception
from coredump.triage.death_test import find_death_test
from coredump.triage.golang import find_go_crash
from coredump.triage.reason import Facts, explain_reason, find_handled_signal
from coredump.triage.rust import find_rust_panic, is_rust_panic
from coredump.triage.signature import generate_signature

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import List, Optional

__all__ = ("explain", "gather_facts")


def gather_facts(crash: Crash, target, where: Optional[str], warnings: List[str]) -> Facts:
    """Read what memory tells beyond the registers; a failure costs that fact only."""
    regs = crash.threads[crash.crashing_thread].registers if crash.crashing_thread is not None else {}
    sp = regs.get(target.arch.sp) if target.arch is not None else None
    abort = exception = handled = None
    try:
        text = find_abort_message(target)
        abort = decode_abort_message(text) if text else None
    except Exception as exc:  # memory of a damaged core must not cost the report
        warnings.append(f"__abort_msg unreadable ({type(exc).__name__}: {exc})")
    panic = None
    frames = crash.threads[crash.crashing_thread].frames if crash.crashing_thread is not None else ()
    if crash.signal.name == "SIGABRT" and abort is None and is_rust_panic(frames):
        try:
            panic = find_rust_panic(target, sp)
        except Exception as exc:
            warnings.append(f"Rust panic unreadable ({type(exc).__name__}: {exc})")
    elif crash.signal.name == "SIGABRT" and abort is None:
        try:
            exception = find_cxx_exception(target, regs, sp)
        except Exception as exc:
            warnings.append(f"C++ exception unreadable ({type(exc).__name__}: {exc})")
    try:
        ct = target.core.threads[crash.crashing_thread] if crash.crashing_thread is not None else None
        handled = find_handled_signal(target, sp, ct.prstatus.pr_sighold if ct is not None else None)
    except Exception as exc:
        warnings.append(f"signal frame unreadable ({type(exc).__name__}: {exc})")
    go = find_go_crash(frames)
    if go is not None:
        # runtime.throw's text is in no _panic: in the runtime's print ring (triage.gofatal)
        fatal = go.what in ("fatal error", "unexpected fault address")
        # The Go runtime's readers, imported for a Go crash only.
        from coredump.triage.gofatal import find_go_fatal
        from coredump.triage.gopanic import find_go_panic

        try:
            go = replace(go, message=find_go_fatal(target) if fatal else find_go_panic(target, regs))
        except Exception as exc:
            warnings.append(f"Go {'fatal error' if fatal else 'panic value'} unreadable ({type(exc).__name__}: {exc})")
    return Facts(abort, exception, handled, where, panic, go)


def _assertion(facts: Facts) -> Optional[str]:
    if facts.abort is not None:
        return facts.abort.text
    if facts.panic is not None:
        return facts.panic.text
    if facts.go is not None and facts.go.message is not None:
        return facts.go.message
    if facts.exception is not None:
        return f"terminate called after throwing an instance of '{facts.exception.type_name}'" + (
            f": {facts.exception.what}" if facts.exception.what else "")
    return None


def explain(crash: Crash, target=None) -> Crash:
    """The crash with assertion, reason, classification, signature and fingerprint set."""
    if target is None:
        sig = generate_signature(crash)
        return replace(crash, reason=crash.signal.description, signature=sig.signature,
                                   fingerprint=sig.fingerprint,
                                   warnings=tuple(crash.warnings) + tuple(sig.notes))
    fact_warnings: List[str] = []
    facts = gather_facts(crash, target, None, fact_warnings)
    # The exception's type only changes the head; the frames are the same either way.
    sig = generate_signature(crash, exception=facts.exception.type_name if facts.exception else None)
    warnings = list(crash.warnings) + list(sig.notes) + fact_warnings
    top = sig.frames[0] if sig.frames else None
    where = top.text if top is not None and not (top.is_system or top.is_irrelevant) else None
    facts = replace(facts, where=where)
    try:
        e = explain_reason(crash, target, facts)
        reason, classification = e.reason, e.classification
    except Exception as exc:  # an unexpected core layout: keep the kernel's words
        warnings.append(f"crash reason unavailable ({type(exc).__name__}: {exc})")
        reason, classification = crash.signal.description, None
    try:
        death_test = find_death_test(target, crash.process.argv)
    except Exception as exc:  # noqa: BLE001 - a damaged core costs this fact only
        warnings.append(f"death-test marker unreadable ({type(exc).__name__}: {exc})")
        death_test = None
    return replace(crash, assertion=_assertion(facts), reason=reason,
                               classification=classification, signature=sig.signature,
                               fingerprint=sig.fingerprint, warnings=tuple(dict.fromkeys(warnings)),
                               death_test=death_test)
