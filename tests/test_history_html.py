"""`coredump report --db URL -o DIR`: the history page, its structure read with htmltree and
the page as headless Chromium renders it from file://, offline, under its CSP."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

pytest.register_assert_rewrite("tests.historydb")
pytest_plugins = ("tests.historydb", "tests.s3server")  # pg_server, db_url; moto_server, s3env

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


def _href(page_path: Path, fingerprint: str):
    """The report link and the fetch command of `fingerprint`'s row of the top table."""
    row = next(r for r in parse_html(page_path.read_text()).by_id("top").find_all("tr", "sig-row")
               if r.attrs["data-fingerprint"] == fingerprint)
    link = [a.attrs["href"] for a in row.find_all("a") if "report" in a.attrs.get("class", "")]
    fetch = [c.text for c in row.find_all("code") if "fetch" in c.attrs.get("class", "")]
    return (link[0] if link else None), (fetch[0] if fetch else None)


def test_s3_crashes_link_through_link_base(s3env, chromium, tmp_path):  # noqa: F811
    """Crashes uploaded to a real S3 (moto on 127.0.0.1): --link-base maps their prefix to
    a web base (here the server's own path-style URLs) or the console; the fetch command
    stays beside the link. A hostile report path or key gets no link."""
    url = f"sqlite:///{tmp_path / 'h.db'}"
    env = {**ENV, **s3env.env, "COREDUMP_DB": url}
    job = write_job(tmp_path / "a", NOW - DAY, [STEADY])
    r = subprocess.run(command("upload", str(job), s3env.url("ci"), "--job", "run 7"), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    hostile = write_job(tmp_path / "b", NOW - DAY, [FRESH, GONE])
    doc = json.loads((hostile / "summary.json").read_text())
    doc["crashes"][0]["report_html"] = "javascript:alert(1)"
    doc["crashes"][1]["report_html"] = "../../../other/c3/report.html"
    (hostile / "summary.json").write_text(json.dumps(doc))
    client = s3env.client()
    for path in hostile.rglob("*"):
        if path.is_file():
            client.put_object(Bucket=s3env.bucket, Key=f"ci/evil/{path.relative_to(hostile)}", Body=path.read_bytes())
    assert subprocess.run(command("record", s3env.url("ci", "evil")), env=env, timeout=120).returncode == 0
    # what an S3 website endpoint is set up with: anyone may read the prefix
    readable = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{s3env.bucket}/ci/*"}
    client.put_bucket_policy(Bucket=s3env.bucket,
                             Policy=json.dumps({"Version": "2012-10-17", "Statement": [readable]}))
    web = f"{s3env.endpoint}/{s3env.bucket}/ci"
    out = tmp_path / "out"
    r = subprocess.run(command("report", "--db", url, "-o", str(out), "--link-base", f"{s3env.url('ci')}={web}",
                               "--link-base", f"{s3env.url('elsewhere')}=console:eu-west-1"), env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    href, fetch = _href(out / "history.html", "fp-steady")
    assert href == f"{web}/run%207/c1/report.html" and fetch == f"coredump fetch {s3env.url('ci', 'run 7')}/c1"
    for fp, crash_id in (("fp-fresh", "c2"), ("fp-gone", "c3")):
        assert _href(out / "history.html", fp) == (None, f"coredump fetch {s3env.url('ci', 'evil')}/{crash_id}")
    # the link opens the uploaded report as a page (served as text/html) in Chromium
    dom = dump_dom(chromium, href, tmp_path / "profile")
    assert dom.find("title").text == "r"
    dom = dump_dom(chromium, out / "history.html", tmp_path / "profile")
    assert [a.attrs["href"] for a in dom.by_id("top").find_all("a") if a.text == "latest report"] == [href]
    console = subprocess.run(command("report", "--db", url, "-o", str(tmp_path / "console"), "--link-base",
                                     f"{s3env.url('ci')}=console:eu-west-1"), env=env, capture_output=True,
                             text=True, timeout=120)
    assert console.returncode == 0, console.stderr
    assert _href(tmp_path / "console" / "history.html", "fp-steady")[0] == (
        f"https://s3.console.aws.amazon.com/s3/object/{s3env.bucket}?region=eu-west-1&prefix=ci%2Frun%207%2Fc1%2F"
        "report.html")


def test_link_base_refuses_what_is_not_a_web_base(tmp_path):
    url = f"sqlite:///{tmp_path / 'h.db'}"
    for bad in ("s3://ci/x=javascript:alert(1)", 's3://ci/x=https://cdn.test/"onclick=1', "https://cdn=https://x",
                "s3://ci/../x=https://cdn.test"):
        r = subprocess.run(command("report", "--db", url, "-o", str(tmp_path / "o"), "--link-base", bad), env=ENV,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2 and "Invalid value for '--link-base'" in r.stderr and "Traceback" not in r.stderr, \
            r.stderr
    r = subprocess.run(command("report", str(tmp_path), "--link-base", "s3://ci=https://cdn.test"), env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "give --db with it" in r.stderr
