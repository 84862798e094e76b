"""The sdist carries what the tests need, and the metadata a package index shows (PEP 639)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sdist(tmp_path_factory):
    try:
        import setuptools
    except ImportError:
        pytest.skip("setuptools is not installed: it builds the sdist")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (77, 0):
        pytest.skip(f"setuptools {setuptools.__version__} predates PEP 639 license expressions (77)")
    out = tmp_path_factory.mktemp("dist")
    code = "import sys; from setuptools import build_meta; print(build_meta.build_sdist(sys.argv[1]))"
    run = subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    return out / run.stdout.strip().splitlines()[-1]


def _names(path: Path):
    with tarfile.open(path) as tar:
        return {m.name.split("/", 1)[1] for m in tar.getmembers() if "/" in m.name}


def test_sdist_has_what_the_tests_need(sdist):
    names = _names(sdist)
    for needed in ("LICENSE", "Makefile", "README.md", "c_samples/Makefile", "c_samples/segv.c",
                   "tests/conftest.py", "tests/cores.py", "coredump/report/templates/index.html"):
        assert needed in names, needed
    assert not any(n.startswith("c_samples/build/") or "__pycache__" in n for n in names)


def test_metadata_has_an_spdx_license_and_classifiers(sdist):
    with tarfile.open(sdist) as tar:
        info = next(m for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/PKG-INFO"))
        text = tar.extractfile(info).read().decode()
    assert "License-Expression: MIT" in text
    assert "License-File: LICENSE" in text
    assert "Classifier: Topic :: Software Development :: Debuggers" in text
