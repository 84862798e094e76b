import json
import os

import pytest

from coredump.errors import MissingFileError, StorageError
from coredump.report.render import load_summary, render_artifacts
from tests.crash_samples import segv_crash, write_artifacts


def test_renders_every_file_and_updates_summary(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)], note="kept")
    result = render_artifacts(root)
    assert result.index == root.resolve() / "index.html" and result.junit.is_file()
    assert [p.relative_to(root.resolve()).as_posix() for p in result.reports] == [
        "001-1/report.html", "002-2/report.html"]
    summary = json.loads((root / "summary.json").read_text())
    assert summary["note"] == "kept" and summary["command"] == ["make", "test"]
    assert [c["report_html"] for c in summary["crashes"]] == ["001-1/report.html", "002-2/report.html"]
    assert not [p for p in os.listdir(root) if p.startswith(".")]  # no temporary files left


def test_rendering_twice_gives_the_same_pages(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1)])
    render_artifacts(root)
    first = (root / "index.html").read_text(), (root / "001-1" / "report.html").read_text()
    render_artifacts(root)
    assert first == ((root / "index.html").read_text(), (root / "001-1" / "report.html").read_text())


def test_missing_and_broken_crash_json_are_warnings(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2), segv_crash(3)])
    (root / "001-1" / "crash.json").unlink()
    (root / "002-2" / "crash.json").write_text("{not json")
    result = render_artifacts(root)
    assert len(result.reports) == 1 and len(result.warnings) == 2
    assert "001-1" in result.warnings[0] and "002-2" in result.warnings[1]
    summary = json.loads((root / "summary.json").read_text())
    assert [c["report_html"] for c in summary["crashes"]] == [None, None, "003-3/report.html"]
    assert "001-1" in (root / "index.html").read_text()


def test_directory_without_summary(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    (root / "summary.json").unlink()
    assert [c["id"] for c in load_summary(root)["crashes"]] == ["001-1", "002-2"]
    result = render_artifacts(root)
    assert len(result.reports) == 2
    assert json.loads((root / "summary.json").read_text())["schema"] == "coredump.summary/1"


def test_errors(tmp_path):
    with pytest.raises(MissingFileError):
        render_artifacts(tmp_path / "nowhere")
    (tmp_path / "summary.json").write_text("[]")
    with pytest.raises(StorageError):
        render_artifacts(tmp_path)
