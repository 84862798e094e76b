"""
Signatures
==========

A short, stable name for a crash (``SIGSEGV in store_value < fill_list < build``) and its
fingerprint, built from the crashing thread's frames by an ordered list of rules in the
manner of Socorro's signature generation (``socorro/signature/rules.py``), with the frame
lists in ``siglists/`` (see ``siglists/README.md``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from functools import cache
from typing import List, Optional, Sequence, Tuple

from coredump.model import Crash, Frame
from coredump.triage.siglist import SIGLISTS, load_siglist

__all__ = ("SigFrame", "SignatureResult", "RULES", "normalize_function", "generate_signature",
           "compute_fingerprint", "load_siglist", "module_name")

# Socorro's MAXIMUM_FRAMES_TO_CONSIDER: deeper frames never change a signature.
MAX_FRAMES_CONSIDERED = 40
# How many relevant frames a signature names (apport's crash_signature uses five; three
# tell bugs apart in practice and survive refactorings of the callers better).
SIGNATURE_DEPTH = 3
# Signals a process can get from others; the signature says when one was sent, not raised.
_SENT_CODES = {0: "kill", -1: "sigqueue", -6: "tkill"}


@cache
def _sentinels() -> Tuple[str, ...]:
    text = (SIGLISTS / "sentinel_frames.txt").read_text(encoding="utf-8")
    return tuple(s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#"))


# -- name normalization -------------------------------------------------------------------

# GCC clone suffixes on ELF symbol names at -O2 (ipa-cp, ipa-sra, partial inlining, hot/cold
# splitting): store_value.constprop.0, parse.isra.0, f.part.0, main.cold.
_CLONE_RE = re.compile(r"(?:\.(?:constprop|isra|part|cold|lto_priv|localalias|clone)(?:\.\d+)?)+$")
_CLONE_DEMANGLED_RE = re.compile(r"\s*\[clone [^\]]*\]")
# Rust v0/legacy symbol hashes (Socorro's fixup_hash).
_RUST_HASH_RE = re.compile(r"::h[0-9a-f]{16}$")
# glibc's ifunc variants of one string function: __strlen_avx2, __memmove_avx_unaligned_erms.
_IFUNC_RE = re.compile(r"__((?:raw)?(?:mem|str|stp|wcs|wmem)[a-z]*?)(?:_chk)?_"
                       r"(?:avx|sse|ssse|evex|erms|unaligned|aligned|rtm|nocacheline|no_bsf|ifunc)\w*")
_OPERATORS = ("operator<=>", "operator<<=", "operator>>=", "operator<<", "operator>>", "operator<=",
              "operator>=", "operator->*", "operator->", "operator<", "operator>", "operator()")


def _collapse(text: str, open_ch: str, close_ch: str, replacement: str) -> str:
    """Replace every outermost ``open_ch … close_ch`` group with `replacement`."""
    out, depth = [], 0
    for ch in text:
        if ch == open_ch:
            if depth == 0:
                out.append(replacement)
            depth += 1
        elif ch == close_ch and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def normalize_function(name: str) -> str:
    """The part of a function name that names the same code in every build: no parameters,
    template arguments collapsed to ``<T>`` (Socorro's rule), no GCC clone suffix, no Rust
    hash, no glibc ``__GI_`` alias prefix or ifunc variant suffix.

    >>> normalize_function("store_value.constprop.0")
    'store_value'
    >>> normalize_function("std::vector<int, std::allocator<int> >::at(unsigned long) const")
    'std::vector<T>::at'
    >>> normalize_function("__memmove_avx_unaligned_erms")
    'memmove'
    """
    name = name.strip()
    if name.startswith("<") and name.endswith(">") and "::" not in name:
        return name  # gdb-style pseudo-frames: <signal handler called>
    name = _CLONE_DEMANGLED_RE.sub("", name)
    name = _CLONE_RE.sub("", name)
    name = _RUST_HASH_RE.sub("", name)
    if name.startswith("__GI_"):
        name = name[len("__GI_"):]
    m = _IFUNC_RE.fullmatch(name)
    if m:
        name = m.group(1)
    name = name.replace("[abi:cxx11]", "")
    saved = {}
    for i, token in enumerate(("(anonymous namespace)", *_OPERATORS)):
        if token in name:
            key = f"\x00{i}\x00"
            saved[key] = token
            name = name.replace(token, key)
    name = _collapse(name, "(", ")", "")
    name = _collapse(name, "<", ">", "<T>")
    name = re.sub(r"\s*(?:const|volatile|&&|&)\s*$", "", name).strip()
    if " " in name and "\x00" not in name and "operator" not in name:
        name = name.rsplit(" ", 1)[1]  # a return type before a template function's name
    for key, token in saved.items():
        name = name.replace(key, token)
    return name


# -- frames -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SigFrame:
    """One frame as signatures see it: a normalized function name and a module file name."""

    function: Optional[str]
    module: Optional[str]
    module_offset: Optional[int] = None

    @property
    def text(self) -> str:
        if self.function:
            return self.function
        if self.module:
            return f"{self.module}+{self.module_offset:#x}" if self.module_offset is not None else self.module
        return "??"

    @property
    def key(self) -> Tuple[Optional[str], str]:
        """What identifies the frame's code: module and name (the offset only when unnamed)."""
        return self.module, self.text

    @property
    def is_system(self) -> bool:
        return bool(self.module) and bool(load_siglist("system_modules.txt").fullmatch(self.module))

    @property
    def is_irrelevant(self) -> bool:
        if self.function is None:
            return False
        return bool(load_siglist("irrelevant_frames.txt").fullmatch(self.function))

    @property
    def is_tail(self) -> bool:
        return self.function is not None and bool(load_siglist("tail_frames.txt").fullmatch(self.function))


# A shared object's version suffix changes with every library update: libstdc++.so.6.0.30.
_SO_VERSION_RE = re.compile(r"(\.so)(?:\.\d+)+$")


def module_name(path: Optional[str]) -> Optional[str]:
    """A module as signatures name it: the file name without the shared-object version.

    >>> module_name("/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30")
    'libstdc++.so'
    """
    return _SO_VERSION_RE.sub(r"\1", os.path.basename(path)) if path else None


def sig_frame(frame: Frame) -> SigFrame:
    module = module_name(frame.module)
    function = normalize_function(frame.function) if frame.function else None
    return SigFrame(function or None, module, frame.module_offset)


# -- rules ------------------------------------------------------------------------------


@dataclass
class SignatureState:
    """What the rules work on: the crash, the frames left, the head and notes so far."""

    crash: Crash
    frames: List[SigFrame]
    head: str
    notes: List[str] = field(default_factory=list)
    fallback: bool = False


class Rule:
    """A step of signature generation (Socorro's ``Rule``): ``action`` runs when
    ``predicate`` holds and edits the state in place."""

    def predicate(self, state: SignatureState) -> bool:
        return True

    def action(self, state: SignatureState) -> None:
        raise NotImplementedError


class SentSignalRule(Rule):
    """A signal sent by another process is not a fault of the code it interrupted: the head
    says so (``SIGSEGV (kill)``), so it never shares a fingerprint with a real SIGSEGV there."""

    def predicate(self, state):
        s = state.crash.signal
        return s.code in _SENT_CODES and s.sender_pid not in (None, state.crash.process.pid)

    def action(self, state):
        state.head = f"{state.head} ({_SENT_CODES[state.crash.signal.code]})"


class SentinelRule(Rule):
    """Socorro's signature sentinels: a frame that is known to be where a bug shows itself
    (a pure virtual call) becomes the top; the runtime's frames above it are dropped."""

    def action(self, state):
        names = [f.function for f in state.frames]
        for sentinel in _sentinels():
            if sentinel in names:
                state.frames = state.frames[names.index(sentinel):]
                return


class SkipTopRule(Rule):
    """The frames on top that are the crash's machinery (abort, raise, __assert_fail,
    malloc_printerr, __cxa_throw, std::terminate, the signal trampoline) or that lie in the
    C/C++ runtime's libraries, named or not, are not the bug: skip to the first other one.
    So is a frame outside every module: the address a bad jump or call went to."""

    def action(self, state):
        for i, f in enumerate(state.frames):
            # A frame in no module with no name is where a bad jump landed, not code.
            if not (f.is_irrelevant or f.is_system or f.is_tail or (f.module is f.function is None)):
                if i:
                    state.frames = state.frames[i:]
                return
        state.notes.append("every frame is in the C runtime; the signature names its frames")
        named = [f for f in state.frames if f.function and not f.is_tail]
        state.frames = named or state.frames
        state.fallback = True


class DropNoiseRule(Rule):
    """Below the top, runtime frames (qsort between a comparator and its caller, the signal
    trampoline between a handler and the interrupted code) and program-start frames change
    with libc's version and debug symbols: drop them."""

    def predicate(self, state):
        return len(state.frames) > 1 and not state.fallback

    def action(self, state):
        rest = [f for f in state.frames[1:] if not (f.is_irrelevant or f.is_system or f.is_tail)]
        state.frames = state.frames[:1] + rest


class CollapseRecursionRule(Rule):
    """Direct recursion repeats one frame hundreds of times, a number that depends on the
    build's frame size: a run of equal frames counts once."""

    def action(self, state):
        out: List[SigFrame] = []
        for f in state.frames:
            if not out or out[-1].key != f.key:
                out.append(f)
        state.frames = out


class TruncateRule(Rule):
    """A signature names SIGNATURE_DEPTH frames."""

    def action(self, state):
        state.frames = state.frames[:SIGNATURE_DEPTH]


RULES: Tuple[Rule, ...] = (SentSignalRule(), SentinelRule(), SkipTopRule(), DropNoiseRule(),
                           CollapseRecursionRule(), TruncateRule())


# -- result -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignatureResult:
    signature: str
    fingerprint: str
    frames: Tuple[SigFrame, ...]
    notes: Tuple[str, ...] = ()


def compute_fingerprint(head: str, frames: Sequence[SigFrame]) -> str:
    """sha256 of the head and the (module, function) pairs, 16 hex digits: for machines, where
    the signature is for people. Unnamed frames enter with their module offset."""
    payload = json.dumps([head, [[f.module, f.text] for f in frames]], separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def generate_signature(crash: Crash, rules: Sequence[Rule] = RULES) -> SignatureResult:
    """Run `rules` over the crashing thread's frames. Those include the frames tail calls
    removed (analysis puts them back, ``symbols.tailcall``), so -O2 builds name the same
    functions as -O0 ones.

    A rule that raises is skipped with a note, as Socorro's generator does."""
    frames: Sequence[Frame] = ()
    if crash.crashing_thread is not None and crash.crashing_thread < len(crash.threads):
        frames = crash.threads[crash.crashing_thread].frames[:MAX_FRAMES_CONSIDERED]
    state = SignatureState(crash, [sig_frame(f) for f in frames], crash.signal.name)
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
    else:
        signature = f"{state.head} (no frames)"
    return SignatureResult(signature, compute_fingerprint(state.head, state.frames),
                           tuple(state.frames), tuple(state.notes))
