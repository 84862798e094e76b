"""
Signatures
==========

A short, stable name for a crash (``SIGSEGV in store_value < fill_list < build``) and its
fingerprint, built from the crashing thread's frames by an ordered list of rules
(:mod:`coredump.triage.sigrules`) in the manner of Socorro's signature generation
(``socorro/signature/rules.py``), with the frame lists in ``siglists/`` (see
``siglists/README.md``).

The head names the signal, a sent signal's sender kind (``SIGSEGV (kill)``) and an uncaught
C++ exception's type (``SIGABRT (std::out_of_range)``). Only the type: what() is read back
for ``std::logic_error`` and ``std::runtime_error`` and classes derived from them (their
layout is libstdc++'s), never for other classes, whose what() is a virtual call that a core
cannot run and whose message may live anywhere in the object; and a message is data, not an
identity. A Rust panic's message and location are left out for the same reason: a panic has
no type, and its message usually formats values.
"""

from __future__ import annotations

from coredump.digest import sha256
from coredump.jsondoc import dumps_compact
from coredump.model import Crash, Frame
from coredump.record import dataclass
from coredump.triage.sigframes import SigFrame, module_name, normalize_function, sig_frame
from coredump.triage.siglist import load_siglist
from coredump.triage.sigrules import RULES, Rule, SignatureState

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional, Sequence, Tuple

__all__ = ("SigFrame", "SignatureResult", "RULES", "Rule", "normalize_function", "generate_signature",
           "compute_fingerprint", "load_siglist", "module_name", "sig_frame")

# Socorro's MAXIMUM_FRAMES_TO_CONSIDER: deeper frames never change a signature.
MAX_FRAMES_CONSIDERED = 40


@dataclass(frozen=True)
class SignatureResult:
    signature: str
    fingerprint: str
    frames: Tuple[SigFrame, ...]
    notes: Tuple[str, ...] = ()


def compute_fingerprint(head: str, frames: Sequence[SigFrame], mark: Optional[str] = None) -> str:
    """sha256 of the head and the (module, function) pairs, 16 hex digits: for machines, where
    the signature is for people. Unnamed frames enter with their module offset; a mark
    (``mutual recursion``) enters after them."""
    body = [head, [[f.module, f.text] for f in frames]] + ([mark] if mark else [])
    payload = dumps_compact(body)
    return sha256(payload.encode("utf-8")).hexdigest()[:16]


def generate_signature(crash: Crash, rules: Sequence[Rule] = RULES,
                       exception: Optional[str] = None) -> SignatureResult:
    """Run `rules` over the crashing thread's frames. Those include the frames tail calls
    removed (analysis puts them back, ``unwind.tailcall``), so -O2 builds name the same
    functions as -O0 ones. `exception` is the type of the uncaught C++ exception, if any
    (:func:`coredump.triage.assertion.find_cxx_exception`).

    A rule that raises is skipped with a note, as Socorro's generator does."""
    frames: Sequence[Frame] = ()
    if crash.crashing_thread is not None and crash.crashing_thread < len(crash.threads):
        frames = crash.threads[crash.crashing_thread].frames[:MAX_FRAMES_CONSIDERED]
    state = SignatureState(crash, [sig_frame(f) for f in frames], crash.signal.name, exception=exception)
    for rule in rules:
        try:
            if rule.predicate(state):
                rule.action(state)
        except Exception as exc:  # a broken rule costs its step, never the signature
            state.notes.append(f"signature rule {type(rule).__name__} failed: {exc}")
    if crash.crashing_thread is None:
        state.notes.append("no crashing thread identified")
    if state.frames:
        signature = f"{state.head} in {' < '.join(f.text for f in state.frames)}"
        signature += f" ({state.mark})" if state.mark else ""
    else:
        signature = f"{state.head} (no frames)"
    return SignatureResult(signature, compute_fingerprint(state.head, state.frames, state.mark),
                           tuple(state.frames), tuple(state.notes))
