import os
import shutil
import tempfile

import pytest

from tests import cores
from tests.gdb_oracle import SYSTEM, DebugFiles, system_debug_files

_CACHE_HOME = None


def pytest_configure(config):
    """The parse cache of this run lives in a fresh directory: what earlier runs left in the
    user's ~/.cache must not answer for the code under test (nor the tests fill it)."""
    global _CACHE_HOME
    _CACHE_HOME = tempfile.mkdtemp(prefix="coredump-test-cache-")
    os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
    # Nor may a run record into the developer's own crash database (COREDUMP_DB, or the
    # default file under XDG_DATA_HOME): tests name theirs.
    os.environ.pop("COREDUMP_DB", None)
    os.environ["XDG_DATA_HOME"] = os.path.join(_CACHE_HOME, "data")


def pytest_sessionfinish(session, exitstatus):
    cores.cleanup()
    if _CACHE_HOME:
        shutil.rmtree(_CACHE_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def make_core():
    """make_core(variant, program, *args) -> Path of a real kernel core (skips where none can be made)."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    return cores.make_core


@pytest.fixture(scope="session")
def samples():
    """The -O0 sample programs' directory, built, where this machine can dump cores (else the
    test skips, saying why)."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    cores.build_samples()
    return cores.BUILD / "O0"


@pytest.fixture(scope="session")
def _no_debug_files(tmp_path_factory):
    return str(tmp_path_factory.mktemp("no-debug-files"))


@pytest.fixture(params=["hidden", "system"])
def debug_files(request, _no_debug_files, monkeypatch) -> DebugFiles:
    """The debug files an oracle comparison runs with, both sides alike (gdb_oracle.DebugFiles):
    none, and the machine's. Without DEBUGINFOD_URLS: no server answers for either side."""
    monkeypatch.delenv("DEBUGINFOD_URLS", raising=False)
    if request.param == "hidden":
        return DebugFiles("hidden", _no_debug_files)
    if not system_debug_files():
        pytest.skip("no debug files under /usr/lib/debug: the same comparison as 'hidden'")
    return SYSTEM


def _tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: {why}")
    return path


@pytest.fixture(scope="session")
def gdb():
    return _tool("gdb", "the oracle comparison needs it")


@pytest.fixture(scope="session")
def eu_readelf():
    return _tool("eu-readelf", "elfutils' reading of the notes is the oracle (Debian: elfutils)")


@pytest.fixture(scope="session")
def gdb_multiarch():
    return _tool("gdb-multiarch", "the aarch64 oracle needs it")


@pytest.fixture(scope="session")
def make_qemu_core():
    """make_qemu_core(variant, program, *args) -> Path of a core qemu-aarch64 wrote."""
    reason = cores.qemu_skip_reason()
    if reason:
        pytest.skip(reason)
    return cores.make_qemu_core
