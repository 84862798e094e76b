"""The pages as a real browser renders them: headless Chromium from file://, offline."""

import importlib.util
import json
import shutil
import struct
import subprocess
import sys

import pytest

from coredump.report.render import render_artifacts
from tests.cores import BUILD, ROOT
from tests.crash_samples import abort_crash, segv_crash, write_artifacts
from tests.htmltree import parse_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


@pytest.fixture(scope="module")
def chromium():
    path = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if path is None:
        pytest.skip("headless Chromium is not installed")
    return path


def dump_dom(chromium, page, profile):
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--dump-dom", page if isinstance(page, str) else page.as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=True)
    return parse_html(proc.stdout)


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = write_artifacts(tmp_path_factory.mktemp("job") / "coredump-artifacts",
                           [segv_crash(4242), abort_crash(5151), segv_crash(4301)])
    return render_artifacts(root)


def test_index_in_browser(chromium, job, tmp_path):
    dom = dump_dom(chromium, job.index, tmp_path)
    groups = dom.find_all("section", "group")
    assert len(groups) == 2
    assert [li.find("strong").text for li in groups[0].find("ol").find_all("li")][0] == "store_value"
    # the inline script ran under the page's CSP: it un-hides the filter box
    assert "hidden" not in dom.by_id("filter").parent.attrs


def test_report_in_browser(chromium, job, tmp_path):
    dom = dump_dom(chromium, job.reports[0], tmp_path)
    first = dom.by_id("crashing-thread").find("td", "fn")
    assert first.text.split()[0] == "store_value"
    assert "store_value" in dom.find("h1").text
    assert all("hidden" not in b.parent.attrs for b in dom.by_id("threads").find_all("button"))


def test_hostile_page_in_browser(chromium, tmp_path):
    crash = segv_crash(9, argv=("./p", "<script>alert(1)</script>", '"><img src=x onerror=alert(2)>'),
                       function='<img src=x onerror=alert(3)>')
    result = render_artifacts(write_artifacts(tmp_path / "a", [crash]))
    for page in (result.index, result.reports[0]):
        dom = dump_dom(chromium, page, tmp_path / "profile")
        assert dom.find_all("img") == [] and len(dom.find_all("script")) == 1
        assert "<img src=x onerror=alert(3)>" in dom.text


def _png_size(path):
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_screenshots_script(chromium, tmp_path):
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["-o", str(tmp_path)]) == 0
    sizes = {p.name: _png_size(p) for p in tmp_path.glob("*.png")}
    assert set(sizes) == {"index.png", "report.png", "report-dark.png"}
    assert sizes["index.png"] == (1280, 900)


def test_control_characters_show_as_escapes_in_browser(chromium, tmp_path):
    exe = "/bin/esc\x1b[31mprog"
    crash = segv_crash(9, argv=(exe, "x"))
    crash["process"]["executable"] = exe
    result = render_artifacts(write_artifacts(tmp_path / "a", [crash]))
    for page in (result.index, result.reports[0]):
        dom = dump_dom(chromium, page, tmp_path / "profile")
        assert "/bin/esc\\x1b[31mprog" in dom.text and "\x1b" not in dom.text


def test_arguments_of_a_real_core_in_browser(chromium, make_core, tmp_path):
    """args.c's report() gets a char * holding <script>, an escape sequence and invalid
    UTF-8 (issue #17): the browser shows it as text, in the frame's arguments."""
    exe = BUILD / "O0" / "args"
    out = subprocess.run([sys.executable, "-m", "coredump.cli.main", "analyze", "--format", "json", "--exe",
                          str(exe), str(make_core("O0", "args"))], capture_output=True, text=True, timeout=300)
    crash = json.loads(out.stdout)
    result = render_artifacts(write_artifacts(tmp_path / "a", [crash]))
    dom = dump_dom(chromium, result.reports[0], tmp_path / "profile")
    assert len(dom.find_all("script")) == 1
    args = dom.by_id("crashing-thread").find("td", "fn").find("span", "args").text
    assert args.startswith("(name=0x") and '"<script>alert(1)</script>\\033[31mred\\377\\376"' in args
    assert "initial=65 'A', flag=true, color=BLUE, ratio=1.5, pair=..." in args and "\x1b" not in dom.text
