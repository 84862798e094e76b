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


def _words(text: str):
    return set(text.replace("\\", " ").split())


def test_ci_installs_what_readme_names():
    """README's install line and its list of the tests' tools name what .ci/run installs:
    a package CI needs is one a developer is told about, and the other way round."""
    import re

    readme = (ROOT / "README.md").read_text()
    first = _words(re.search(r"apt-get install -y ([^&`]+)&&", readme).group(1))
    tools = _words(re.search(r"CI \(`\.ci/run`\) installs them all:\s*`([^`]+)`", readme).group(1))
    ci = _words(re.search(r"apt-get install -y -qq --no-install-recommends(.*?)>/dev/null",
                          (ROOT / ".ci" / "run").read_text(), re.S).group(1))
    assert {"catch2", "libboost-test-dev", "libgtest-dev", "postgresql"} <= tools
    assert ci - {"python3"} == first | tools  # python3: what python3-venv depends on anyway
