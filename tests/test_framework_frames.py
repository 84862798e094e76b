"""Test frameworks' own frames are left out of signatures, on real binaries: a Catch2 (v2)
test and a Boost.Test test case whose bodies crash, built at test time against Debian's
catch2 and libboost-test-dev, each run to a real kernel core. googletest's are checked by
tests/test_expect.py on its death-test sample."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from coredump.analysis import analyze_core
from tests.cores import SAMPLES, core_skip_reason, run_crash

# Debian's package, its header and the link flags of each framework's sample
FRAMEWORKS = {
    "catch2": ("catch2", "/usr/include/catch2/catch.hpp", "catch2_crash.cpp", []),
    "boost": ("libboost-test-dev", "/usr/include/boost/test/unit_test.hpp", "boost_test_crash.cpp",
              ["-lboost_unit_test_framework"]),
}


def _build(name: str, out_dir) -> str:
    package, header, source, libs = FRAMEWORKS[name]
    reason = core_skip_reason()
    if reason:
        pytest.skip(reason)
    if not shutil.which("g++") or not os.path.exists(header):
        pytest.skip(f"{name} is not installed (Debian: {package}): its crashing sample needs it")
    exe = out_dir / source.removesuffix(".cpp")
    subprocess.run(["g++", "-O0", "-g", "-o", str(exe), str(SAMPLES / source), *libs], check=True, timeout=600)
    return str(exe)


def _crash(tmp_path_factory, name: str, *args: str):
    exe = _build(name, tmp_path_factory.mktemp(name))
    where = tmp_path_factory.mktemp(f"{name}-run")
    status, core = run_crash([exe, *args], where)
    assert core is not None, f"{name} sample exited {status} without a core"
    return analyze_core(str(core))


def _functions(crash):
    return [f.function or "" for f in crash.threads[crash.crashing_thread].frames]


@pytest.fixture(scope="module")
def catch2_crash(tmp_path_factory):
    return _crash(tmp_path_factory, "catch2")


@pytest.fixture(scope="module")
def boost_crash(tmp_path_factory):
    # Boost's execution monitor turns a signal into a failed test unless told not to catch it
    return _crash(tmp_path_factory, "boost", "--catch_system_errors=no")


def test_catch2_frames_are_left_out(catch2_crash):
    functions = _functions(catch2_crash)
    assert any(f.startswith("Catch::RunContext::") for f in functions)  # the runner is on the stack
    assert catch2_crash.signal.name == "SIGSEGV"
    # the test case's body (TEST_CASE's generated function), then nothing of Catch2
    assert catch2_crash.signature == "SIGSEGV in store_through < C_A_T_C_H_T_E_S_T_0"


def test_boost_test_frames_are_left_out(boost_crash):
    functions = _functions(boost_crash)
    assert "parser::stores_through_null_invoker()" in functions
    assert any(f.startswith("boost::unit_test::") for f in functions)
    assert boost_crash.signature == "SIGSEGV in store_through < parser::stores_through_null::test_method"
