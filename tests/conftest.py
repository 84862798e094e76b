import shutil

import pytest

from tests import cores


def pytest_sessionfinish(session, exitstatus):
    cores.cleanup()


@pytest.fixture(scope="session")
def make_core():
    """make_core(variant, program, *args) -> Path of a real kernel core (skips where none can be made)."""
    reason = cores.core_skip_reason()
    if reason:
        pytest.skip(reason)
    return cores.make_core


@pytest.fixture(scope="session")
def gdb():
    path = shutil.which("gdb")
    if path is None:
        pytest.skip("gdb is not installed: the oracle comparison needs it")
    return path


@pytest.fixture(scope="session")
def make_qemu_core():
    """make_qemu_core(variant, program, *args) -> Path of a core qemu-aarch64 wrote."""
    reason = cores.qemu_skip_reason()
    if reason:
        pytest.skip(reason)
    return cores.make_qemu_core
