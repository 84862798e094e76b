"""Rust demangling (v0 and legacy) against c++filt, the oracle, on every Rust symbol of the
c_samples/rust_panic.rs builds; hostile v0 names end quickly."""

import shutil
import subprocess
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coredump.demangle import demangle
from coredump.demangle.rust import MAX_OUTPUT, demangle_legacy, demangle_rust, demangle_v0
from coredump.elf.image import ElfImage
from tests.rust_samples import build_rust_samples


@pytest.mark.parametrize("mangled, shown, verbose", [
    # RFC 2603's examples and c++filt (binutils 2.40) on names written by hand
    ("_RNvCs1234_7mycrate3foo", "mycrate::foo", "mycrate[3c1c0]::foo"),
    ("_RNvNvCs1234_7mycrate3foo3bar", "mycrate::foo::bar", "mycrate[3c1c0]::foo::bar"),
    ("_RINvCs1234_7mycrate3fooReEB2_", "mycrate::foo::<&str>", "mycrate[3c1c0]::foo::<&str>"),
    ("_RNCNvC7mycrate4main0", "mycrate::main::{closure#0}", "mycrate[0]::main::{closure#0}"),
    ("_RNvMNtC1a1bNtB2_1S3new", "<a::b::S>::new", "<a[0]::b::S>::new"),
    ("_RNvXC1aNtB2_1SNtB2_1T1f", "<a::S as a::T>::f", "<a[0]::S as a[0]::T>::f"),
    ("_RNvYNtC1a1SNtB4_1T1f", "<a::S as a::T>::f", "<a[0]::S as a[0]::T>::f"),
    ("_RINvC1a1fAhj4_E", "a::f::<[u8; 4]>", "a[0]::f::<[u8; 4: usize]>"),
    ("_RINvC1a1fTlOmEE", "a::f::<(i32, *mut u32)>", "a[0]::f::<(i32, *mut u32)>"),
    ("_RINvC1a1fTbEE", "a::f::<(bool,)>", "a[0]::f::<(bool,)>"),
    ("_RINvC1a1fFG_KCRL0_hEuE", "a::f::<for<'a> extern \"C\" fn(&'a u8)>",
     "a[0]::f::<for<'a> extern \"C\" fn(&'a u8)>"),
    ("_RINvC1a1fDNtC1b1TEL_E", "a::f::<dyn b::T>", "a[0]::f::<dyn b[0]::T>"),
    ("_RINvC1a1fKanb_E", "a::f::<-11>", "a[0]::f::<-11: i8>"),
    ("_RNvC1a7uc0d_8b8kaa", None, None),  # a punycode identifier whose length runs past the end
    ("_RNvC1au9gre_6ka8l", "a::grüße", "a[0]::grüße"),
])
def test_known_names(mangled, shown, verbose):
    assert demangle_v0(mangled) == shown
    assert demangle_v0(mangled, verbose=True) == verbose


def test_dispatch_from_demangle():
    assert demangle("_RNvCs1234_7mycrate3foo") == "mycrate::foo"
    assert demangle("_ZN3std2rt10lang_start17h0123456789abcdefE") == "std::rt::lang_start"
    assert demangle_rust("_ZN3std2rt10lang_start17h0123456789abcdefE", verbose=True) == \
        "std::rt::lang_start::h0123456789abcdef"
    assert demangle("_RNvNtC3std2io19OUTPUT_CAPTURE_USED.0") == "std::io::OUTPUT_CAPTURE_USED"


@pytest.mark.parametrize("name", ["_R", "_Rx", "_RNvC", "_RNvCs1234_7mycrate", "_RB_", "_RNvC1a1fx",
                                  "_RINvC1a1fBz_E", "_RC3abc\u00e9", "_ZN3foo3barE",
                                  "_ZN3foo17h0000000000000000E"])
def test_malformed_gives_none(name):
    assert demangle_rust(name) is None


def test_legacy_escapes():
    name = "_ZN4core3ptr42drop_in_place$LT$alloc..string..String$GT$17h0123456789abcdefE"
    assert demangle_legacy(name) == "core::ptr::drop_in_place<alloc::string::String>"


def _backref_bomb(levels: int) -> str:
    """``a::f::<(), ((), ()), …>``: each tuple holds two backrefs to the one before, so the
    last one prints 2**levels units."""
    body = "INvC1a1f"
    prev = len(body)
    body += "u"
    for _ in range(levels):
        ref = "B" + (_base62(prev - 1) if prev else "") + "_"
        start = len(body)
        body += "T" + ref + ref + "E"
        prev = start
    return "_R" + body + "E"


def _base62(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while True:
        out = digits[n % 62] + out
        n //= 62
        if not n:
            return out


def test_backref_bomb_is_cut_short():
    small = _backref_bomb(3)
    assert demangle_v0(small) == ("a::f::<(), ((), ()), (((), ()), ((), ())), "
                                  "((((), ()), ((), ())), (((), ()), ((), ())))>")
    started = time.process_time()  # CPU time: other processes on the machine do not inflate it
    assert demangle_v0(_backref_bomb(60)) is None  # 2**60 units of output: past MAX_OUTPUT
    assert time.process_time() - started < 2
    assert len(demangle_v0(_backref_bomb(10)) or "") < MAX_OUTPUT


def test_deep_nesting_is_refused():
    assert demangle_v0("_RINvC1a1f" + "Rh" * 0 + "R" * 5000 + "hE") is None
    assert demangle_v0("_RINvC1a1f" + "R" * 20 + "hE") == "a::f::<" + "&" * 20 + "u8>"


_V0_ALPHABET = "_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@settings(max_examples=300, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=_V0_ALPHABET, max_size=200), st.sampled_from(["N", "I", "M", "X", "Y", "B", "C"]))
def test_hostile_names_end_quickly(tail, head):
    started = time.process_time()
    for verbose in (False, True):
        out = demangle_v0("_R" + head + tail, verbose)
        assert out is None or isinstance(out, str) and len(out) <= MAX_OUTPUT
    assert time.process_time() - started < 1


def _symbols(path):
    elf = ElfImage(str(path)).elf
    table = elf.get_section_by_name(".symtab")
    return sorted({s.name for s in table.iter_symbols() if s.name.startswith(("_R", "_ZN"))})


def _cxxfilt(names):
    cxxfilt = shutil.which("c++filt")
    if cxxfilt is None:
        pytest.skip("c++filt (binutils) is not installed: it is the oracle")
    return subprocess.run([cxxfilt], input="\n".join(names), capture_output=True, text=True,
                          check=True).stdout.splitlines()


@pytest.mark.parametrize("program", ["rust_panic", "rust_panic_legacy"])
def test_matches_cxxfilt_on_every_rust_symbol(program, record_property):
    build = build_rust_samples()
    names = [n for n in _symbols(build / program) if n.startswith("_R") or demangle_legacy(n)]
    assert len(names) > 300
    wrong = [(n, want, demangle_rust(n, verbose=True)) for n, want in zip(names, _cxxfilt(names))
             if demangle_rust(n, verbose=True) != want]
    rate = 1 - len(wrong) / len(names)
    record_property("cxxfilt_match_rate", f"{rate:.4f} of {len(names)}")
    assert not wrong, f"{len(wrong)} of {len(names)} differ from c++filt (match rate {rate:.2%}): {wrong[:5]}"


def test_sample_covers_the_grammar():
    """The v0 build's symbols use every kind of type and const the RFC has (so the oracle
    test above is worth something)."""
    shown = {demangle_v0(n) for n in _symbols(build_rust_samples() / "rust_panic") if n.startswith("_R")}
    text = "\n".join(s for s in shown if s)
    for piece in ("grüße", "<4, -3, true, '\\u{df}'>", "for<'a> fn(&'a u8) -> &'a u8",
                  'unsafe extern "C" fn(i32) -> i32', "dyn core::iter::traits::iterator::Iterator<Item = u8>",
                  "*const (u16, i64)", "*mut [u32; 0]", "(bool,)", "{closure#0}", " as ", "[i128]"):
        assert piece in text, piece
