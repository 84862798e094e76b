"""
The CI recipes
==============

Every YAML block of README.md is a complete configuration file of its CI, and the GitHub
action and CircleCI orb of this repository are valid: each checked with check-jsonschema
against the schema it vendors (SchemaStore's), with no network. Each recipe that runs
coredump also feeds junit.xml to its CI's test-report view and uploads the artifacts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.M | re.S)


def _check_jsonschema():
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent)) or shutil.which("check-jsonschema")
    if exe is None:
        pytest.skip("check-jsonschema is not installed (a test extra): it validates the recipes")
    return exe


def _kind(text: str) -> str:
    if re.search(r"^version: 2\.1$", text, re.M):
        return "vendor.circle-ci"
    if re.search(r"^on:", text, re.M) and "runs-on:" in text:
        return "vendor.github-workflows"
    return "vendor.gitlab-ci"


def _blocks():
    return BLOCK.findall((ROOT / "README.md").read_text())


def _validate(tmp_path, name: str, text: str, schema: str):
    path = tmp_path / name
    path.write_text(text)
    run = subprocess.run([_check_jsonschema(), "--builtin-schema", schema, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"{name} ({schema}):\n{text}\n{run.stdout}{run.stderr}"


def test_readme_has_a_complete_recipe_for_each_ci():
    kinds = [_kind(b) for b in _blocks()]
    for kind in ("vendor.github-workflows", "vendor.circle-ci", "vendor.gitlab-ci"):
        assert kinds.count(kind) >= 1, kind
    assert kinds.count("vendor.github-workflows") >= 3 and kinds.count("vendor.circle-ci") >= 3


@pytest.mark.parametrize("index", range(len(BLOCK.findall((ROOT / "README.md").read_text()))))
def test_every_readme_yaml_block_validates(tmp_path, index):
    text = _blocks()[index]
    _validate(tmp_path, f"recipe{index}.yml", text, _kind(text))


@pytest.mark.parametrize("index", range(len(BLOCK.findall((ROOT / "README.md").read_text()))))
def test_every_recipe_uploads_the_artifacts_and_feeds_the_test_report(index):
    text = _blocks()[index]
    kind = _kind(text)
    if "your-org/coredump" in text or "your-namespace/coredump" in text:
        return  # the action and the orb do both themselves (checked below)
    if kind == "vendor.circle-ci":
        assert "store_artifacts:" in text and "store_test_results:" in text
    elif kind == "vendor.gitlab-ci":
        assert "junit: coredump-artifacts/junit.xml" in text and "coredump-artifacts/" in text
    else:  # GitHub has no JUnit view: the job summary and annotations are written by coredump itself
        assert "actions/upload-artifact" in text


def test_the_action_validates_and_never_splices_inputs_into_scripts(tmp_path):
    text = (ROOT / "action.yml").read_text()
    _validate(tmp_path, "action.yml", text, "vendor.github-actions")
    runs = re.findall(r"^\s+run: (.*)$", text, re.M)
    assert runs and not [r for r in runs if "${{" in r]  # inputs arrive as environment variables
    assert "actions/upload-artifact" in text and "coredump run" in text


def test_the_orb_validates_and_stores_results_and_artifacts(tmp_path):
    text = (ROOT / "orb.yml").read_text()
    _validate(tmp_path, "orb.yml", text, "vendor.circle-ci")
    assert "store_test_results:" in text and "store_artifacts:" in text
