"""`coredump report --db URL -o DIR`: the history page, its structure read with htmltree and
the page as headless Chromium renders it from file://, offline, under its CSP."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb",)  # pg_server, db_url

from tests.cli import command  # noqa: E402
from tests.cores import ROOT  # noqa: E402
from tests.historydb import write_job  # noqa: E402
from tests.htmltree import parse_html  # noqa: E402
from tests.test_chromium import chromium, dump_dom  # noqa: E402, F401

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
DAY = 86400
NOW = time.time()
STEADY = {"id": "c1", "signature": "SIGSEGV in parse_header", "fingerprint": "fp-steady"}
FRESH = {"id": "c2", "signature": 'SIGABRT in <img src=x onerror=alert(1)>', "fingerprint": "fp-fresh"}
GONE = {"id": "c3", "signature": "SIGBUS in map_file", "fingerprint": "fp-gone"}


@pytest.fixture
def page(db_url, tmp_path):
    jobs = tmp_path / "jobs"
    for day in range(20, 0, -2):
        write_job(jobs / f"d{day}", NOW - day * DAY, [STEADY], commit=f"s{day}")
    write_job(jobs / "fresh", NOW - 2 * DAY, [STEADY, FRESH], branch="feature/x")
    write_job(jobs / "gone", NOW - 12 * DAY, [GONE])
    assert subprocess.run(command("record", "--db", db_url, str(jobs)), env=ENV, timeout=120).returncode == 0
    r = subprocess.run(command("report", "--db", db_url, "-o", str(tmp_path / "out")), env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return tmp_path / "out" / "history.html", jobs


def test_history_page_structure(page):
    path, jobs = page
    dom = parse_html(path.read_text())
    rows = dom.by_id("top").find_all("tr", "sig-row")
    assert [r.attrs["data-fingerprint"] for r in rows] == ["fp-steady", "fp-fresh", "fp-gone"]
    steady = rows[0]
    assert steady.find("td", "num").text == "11"
    bars = steady.find("svg", "chart").find_all("rect")
    assert len(bars) == 30 and sum(int(b.find("title").text) for b in bars) == 11
    link = steady.find("a")
    assert link.attrs["href"] == (jobs / "fresh" / "c1" / "report.html").as_uri()  # the latest crash's report
    new = [li.find("code").text for li in dom.by_id("new").find_all("li")]
    gone = [li.find("code").text for li in dom.by_id("gone").find_all("li")]
    assert new == [FRESH["signature"]] and gone == [GONE["signature"]]
    assert dom.find_all("img") == []  # the hostile signature is text
    csp = next(m for m in dom.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp.attrs["content"]


def test_history_page_in_browser(chromium, page, tmp_path):  # noqa: F811
    path, _ = page
    dom = dump_dom(chromium, path, tmp_path / "profile")
    assert [r.attrs["data-fingerprint"] for r in dom.by_id("top").find_all("tr", "sig-row")][0] == "fp-steady"
    assert dom.find_all("img") == [] and len(dom.find_all("script")) == 1
    assert FRESH["signature"] in dom.by_id("new").text
