"""
Signals
=======

Names and plain-words meanings of signals and their ``si_code`` values (the tables in
``signal_tables.py`` are generated from the kernel's UAPI headers).
"""

from __future__ import annotations

from coredump.triage.signal_tables import SI_CODES, SIGNAL_NAMES

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("signal_name", "describe_signal_meaning", "si_code_name", "describe_fault")

# strsignal(3) wording, as a shell prints it when a job dies.
_MEANINGS = {
    "SIGHUP": "hangup", "SIGINT": "interrupt", "SIGQUIT": "quit", "SIGILL": "illegal instruction",
    "SIGTRAP": "trace/breakpoint trap", "SIGABRT": "aborted", "SIGBUS": "bus error",
    "SIGFPE": "arithmetic exception", "SIGKILL": "killed", "SIGUSR1": "user-defined signal 1",
    "SIGSEGV": "segmentation fault", "SIGUSR2": "user-defined signal 2", "SIGPIPE": "broken pipe",
    "SIGALRM": "alarm clock", "SIGTERM": "terminated", "SIGSTKFLT": "stack fault",
    "SIGXCPU": "CPU time limit exceeded", "SIGXFSZ": "file size limit exceeded",
    "SIGSYS": "bad system call",
}

# Which si_code table applies (asm-generic/siginfo.h groups codes by signal).
_CODE_GROUP = {"SIGILL": "ILL", "SIGFPE": "FPE", "SIGSEGV": "SEGV", "SIGBUS": "BUS",
               "SIGTRAP": "TRAP", "SIGCHLD": "CLD", "SIGPOLL": "POLL", "SIGSYS": "SYS"}


def signal_name(number: int) -> str:
    """The conventional name of a signal number.

    >>> signal_name(11)
    'SIGSEGV'
    """
    if number in SIGNAL_NAMES:
        return SIGNAL_NAMES[number]
    if 34 <= number <= 64:
        return f"SIGRT{number - 34}" if number > 34 else "SIGRTMIN"
    return f"SIG{number}"


def describe_signal_meaning(name: str) -> str:
    return _MEANINGS.get(name, name)


def si_code_name(signo: int, code: Optional[int]) -> Optional[str]:
    """The name of si_code for that signal: ``SEGV_MAPERR``; codes <= 0 (and SI_KERNEL) are
    the generic SI_* values.

    >>> si_code_name(11, 1), si_code_name(6, -6)
    ('SEGV_MAPERR', 'SI_TKILL')
    """
    if code is None:
        return None
    group = _CODE_GROUP.get(signal_name(signo))
    if code > 0 and code != 0x80 and group and code in SI_CODES.get(group, {}):
        return SI_CODES[group][code][0]
    entry = SI_CODES.get("SI", {}).get(code)
    return entry[0] if entry else None


def describe_fault(signo: int, code: Optional[int], address: Optional[int],
                   sender_pid: Optional[int] = None) -> str:
    """One line saying what the kernel reported.

    >>> describe_fault(11, 1, 0)
    'invalid read or write at address 0x0 (null pointer)'
    """
    name = signal_name(signo)
    code_name = si_code_name(signo, code)
    if code is not None and code <= 0 or code_name == "SI_KERNEL":
        how = {"SI_USER": "sent by kill()", "SI_TKILL": "sent by tkill()/raise()",
               "SI_QUEUE": "sent by sigqueue()", "SI_KERNEL": "sent by the kernel"}
        text = f"{name} ({describe_signal_meaning(name)}) {how.get(code_name, 'sent by a process')}"
        if sender_pid:
            text += f" from pid {sender_pid}"
        return text
    if name == "SIGSEGV" and address is not None:
        what = {"SEGV_ACCERR": "access not permitted (write to read-only or execute of "
                               "non-executable memory)",
                "SEGV_MAPERR": "invalid read or write"}.get(code_name or "", "invalid memory access")
        suffix = " (null pointer)" if address < 4096 else ""
        return f"{what} at address {address:#x}{suffix}"
    if code_name and name in _CODE_GROUP:
        group = _CODE_GROUP[name]
        comment = SI_CODES.get(group, {}).get(code, ("", ""))[1]
        where = f" at {address:#x}" if address is not None else ""
        return f"{comment or describe_signal_meaning(name)}{where}"
    return describe_signal_meaning(name)
