import json
import re
from pathlib import Path

import pytest

from coredump.report.html import TEMPLATES, render_crash_html, render_index_html
from coredump.report.render import render_artifacts
from tests.crash_samples import abort_crash, segv_crash, write_artifacts
from tests.htmltree import parse_html

SCRIPT = (Path(TEMPLATES) / "page.js").read_text()
ARGV_ATTACKS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(2)>')
NAME_ATTACK = "operator<< <T&, \"q\" 'a'>"
FILE_ATTACK = "src/we\"ird' <&>.c"


def _job(tmp_path):
    crashes = [segv_crash(4242), abort_crash(5151), segv_crash(4301)]
    root = write_artifacts(tmp_path / "coredump-artifacts", crashes)
    return root, render_artifacts(root)


def _resolves_inside(root: Path, page: Path, href: str) -> Path:
    target = (page.parent / href).resolve()
    assert root.resolve() in target.parents, href
    assert target.is_file(), href
    return target


def test_index_groups_by_signature_most_frequent_first(tmp_path):
    root, result = _job(tmp_path)
    doc = parse_html(result.index.read_text())
    groups = doc.find_all("section", "group")
    assert [g.find("h2").text for g in groups] == [
        "SIGSEGV in store_value < fill_list < record_insert", "SIGABRT in parse_port < load_config < main"]
    assert [g.find("div", "count").text.split("crash")[0] for g in groups] == ["×2", "×1"]
    links = [[a.attrs["href"] for a in g.find_all("a")] for g in groups]
    assert links == [["001-4242/report.html", "003-4301/report.html"], ["002-5151/report.html"]]
    for href in sum(links, []):
        _resolves_inside(root, result.index, href)
    first_frames = [li.find("strong").text for li in groups[0].find("ol").find_all("li")]
    assert first_frames == ["store_value", "fill_list", "record_insert", "store_commit"]
    assert "parse_port: Assertion `port > 0' failed." in groups[1].find("div", "assertion").text


def test_index_header_shows_the_job(tmp_path):
    _, result = _job(tmp_path)
    header = parse_html(result.index.read_text()).find("header")
    assert "$ make test" in header.find("pre").text
    assert "ci-runner-7" in header.text and "2024-05-14 02:11:05" in header.text
    assert header.find("strong", "status-bad").text == "2"


def test_report_page_structure(tmp_path):
    root, result = _job(tmp_path)
    page = result.reports[0]
    doc = parse_html(page.read_text())
    crashing = doc.by_id("crashing-thread")
    assert "crashing" in crashing.attrs["class"].split()
    rows = crashing.find("tbody").find_all("tr")
    assert [r.find("td", "fn").text.split()[0] for r in rows][:4] == [
        "store_value", "fill_list", "record_insert", "store_commit"]
    assert "start" in rows[0].attrs["class"].split()
    assert [("uncertain" in r.attrs["class"].split()) for r in rows] == [False] * 4 + [True] * 3
    assert rows[5].find("span", "scan").attrs["title"].startswith("stack scanning")
    assert rows[2].find("span", "inline") is not None and rows[2].find_all("td")[4].text == ""
    # the crashing thread comes before the other threads, which are collapsed
    body = page.read_text()
    assert body.index('id="crashing-thread"') < body.index('id="threads"')
    threads = doc.find_all("details", "thread")
    assert len(threads) == 2 and all("open" not in d.attrs for d in threads)
    regs = {d.find("span", "name").text: d for d in doc.by_id("registers").find_all("div")[1:]}
    assert regs["rip"].text.endswith("0x5581c3a01139") and "key" in regs["rip"].attrs["class"]


def test_report_modules_warnings_commands_links(tmp_path):
    root, result = _job(tmp_path)
    page = result.reports[0]
    doc = parse_html(page.read_text())
    problems = doc.by_id("modules").find_all("tr", "problem")
    names = [r.find("td").attrs["title"].rsplit("/", 1)[1] for r in problems]
    assert names == ["libstore.so", "libzstd.so.1"]
    assert "0badc0de" in problems[0].text and problems[0].find("span", "bad").text == "mismatch"
    notice = [li.text for li in doc.by_id("warnings").find_all("li")]
    assert any("build-id mismatch" in w for w in notice) and any("not in the core" in w for w in notice)
    commands = [c.text for c in doc.by_id("open-locally").find_all("code")]
    assert commands == ["cd coredump-artifacts", "coredump analyze 001-4242", "coredump gdb 001-4242"]
    hrefs = {a.text: a.attrs["href"] for a in doc.by_id("open-locally").find_all("a")}
    assert set(hrefs) == {"crash.json", "core.zst"}
    for href in hrefs.values():
        _resolves_inside(root, page, href)
    back = doc.find("nav").find("a").attrs["href"]
    assert _resolves_inside(root, page, back) == result.index.resolve()


def test_summary_records_report_paths(tmp_path):
    root, result = _job(tmp_path)
    summary = json.loads((root / "summary.json").read_text())
    assert [c["report_html"] for c in summary["crashes"]] == [
        "001-4242/report.html", "002-5151/report.html", "003-4301/report.html"]
    assert all((root / c["report_html"]).is_file() for c in summary["crashes"])


def test_nothing_but_nulls_still_renders():
    doc = parse_html(render_crash_html({"schema": "coredump.crash/1", "threads": None, "signal": None}))
    assert "no signal" in doc.find("h1").text
    assert "no thread" in doc.by_id("crashing-thread").text
    index = parse_html(render_index_html({}, []))
    assert "0 crashes" in index.find("h1").text


def _hostile_crash(pid=777):
    crash = segv_crash(pid, argv=("./prog", *ARGV_ATTACKS), function=NAME_ATTACK, file=FILE_ATTACK)
    crash["assertion"] = "</pre><script>alert(3)</script>"
    crash["warnings"] = ['<a href="javascript:alert(4)">x</a>']
    crash["modules"][0]["path"] = '/x/"onmouseover="alert(5)'
    crash["signature"] = f"SIGSEGV in {NAME_ATTACK} <b>bold</b>"
    return crash


def assert_no_markup_injected(text: str) -> None:
    """Only our own elements, no event handlers, no URLs with schemes, one hashed script."""
    doc = parse_html(text)
    scripts = doc.find_all("script")
    assert len(scripts) == 1 and scripts[0].text == SCRIPT
    for tag in ("img", "iframe", "object", "embed", "svg", "b", "form", "base"):
        assert doc.find_all(tag) == [], tag
    for element in doc.iter():
        assert not any(name.startswith("on") for name in element.attrs), (element.tag, element.attrs)
        href = element.attrs.get("href")
        assert href is None or not re.match(r"^\s*[a-z][a-z0-9+.-]*:", href, re.I), href
    csp = next(m.attrs["content"] for m in doc.find_all("meta") if m.attrs.get("http-equiv"))
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]


def check_hostile_job(root: Path, result) -> None:
    for page in [result.index, *result.reports]:
        assert_no_markup_injected(page.read_text())
    doc = parse_html(result.reports[0].read_text())
    text = doc.text
    for attack in ARGV_ATTACKS:  # shown as text, not dropped
        assert attack in text


def test_injection_from_crash_data(tmp_path):
    root = write_artifacts(tmp_path / "a", [_hostile_crash(), _hostile_crash(778)])
    result = render_artifacts(root)
    check_hostile_job(root, result)
    doc = parse_html(result.reports[0].read_text())
    assert doc.by_id("crashing-thread").find("td", "fn").text.startswith(NAME_ATTACK)
    assert FILE_ATTACK + ":42" in doc.by_id("crashing-thread").text
    assert "</pre><script>alert(3)</script>" in doc.find("div", "assertion").text
    assert doc.by_id("modules").find("td").attrs["title"] == '/x/"onmouseover="alert(5)'


def test_hostile_ids_and_paths_stay_inside(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    summary = json.loads((root / "summary.json").read_text())
    summary["crashes"][0]["crash_json"] = "../../etc/passwd"
    summary["crashes"][0]["core"] = "../../etc/passwd"
    summary["crashes"][1]["id"] = "../escape"
    (root / "summary.json").write_text(json.dumps(summary))
    result = render_artifacts(root)
    assert result.reports == [] and len(result.warnings) == 2
    assert not (tmp_path / "escape").exists()
    doc = parse_html(result.index.read_text())
    # No report page; the one stored core inside the directory is linked, the other is not.
    assert [a.attrs["href"] for a in doc.find("section", "group").find_all("a")] == ["002-2/core.zst"]
    assert len(doc.find_all("span", "bad")) == 2


@pytest.fixture(scope="module")
def analysis():
    pytest.importorskip("coredump.report.json", reason="crash_to_dict is not on this branch yet")
    return pytest.importorskip("coredump.analysis", reason="the analysis layer is not on this branch yet")


def real_crash(make_core, *args, program="segv"):
    from coredump.analysis import analyze_core
    from coredump.report.json import crash_to_dict

    crash = crash_to_dict(analyze_core(str(make_core("O0", program, *args))))
    return json.loads(json.dumps(crash))


def test_real_multi_crash_job(analysis, make_core, tmp_path):
    crashes = [real_crash(make_core, "a"), real_crash(make_core, "b"), real_crash(make_core, program="fpe")]
    assert crashes[0]["signature"] == crashes[1]["signature"] != crashes[2]["signature"]
    root = write_artifacts(tmp_path / "coredump-artifacts", crashes)
    result = render_artifacts(root)
    groups = parse_html(result.index.read_text()).find_all("section", "group")
    assert [g.find("h2").text for g in groups] == [crashes[0]["signature"], crashes[2]["signature"]]
    assert [len(g.find("ul", "members").find_all("a")) for g in groups] == [2, 1]
    for group, crash in zip(groups, (crashes[0], crashes[2])):
        expected = crash["threads"][crash["crashing_thread"]]["frames"][0]["function"]
        for a in group.find_all("a"):
            page = _resolves_inside(root, result.index, a.attrs["href"])
            top = parse_html(page.read_text()).by_id("crashing-thread").find("td", "fn").text.split()[0]
            assert top == expected


def test_real_core_with_hostile_argv(analysis, make_core, tmp_path):
    crash = real_crash(make_core, *ARGV_ATTACKS)
    assert list(ARGV_ATTACKS) == crash["process"]["argv"][1:]
    root = write_artifacts(tmp_path / "a", [crash])
    check_hostile_job(root, render_artifacts(root))


def _with_tail_call(crash):
    """A frame a tail call removed, put back between fill_list and its caller (as analyze does)."""
    frames = crash["threads"][0]["frames"]
    put_back = {"index": 2, "pc": "0x5581c3a011c4", "function": "build_list", "offset": 20,
                "module": frames[1]["module"], "module_offset": "0x11c4", "file": "src/list.c", "line": 31,
                "inline": False, "trust": "none", "tailcall": True}
    crash["threads"][0]["frames"] = frames[:2] + [put_back] + [dict(f, index=f["index"] + 1) for f in frames[2:]]
    return crash


def test_tail_call_frame_is_tagged():
    doc = parse_html(render_crash_html(_with_tail_call(segv_crash())))
    rows = doc.by_id("crashing-thread").find("tbody").find_all("tr")
    tagged = [r for r in rows if r.find("span", "tailcall") is not None]
    assert [r.find("td", "fn").text.split()[0] for r in tagged] == ["build_list"]
    assert tagged[0].find_all("td")[4].text == "0x5581c3a011c4"  # its own pc: the jmp's return address
    assert "tail call" in tagged[0].find("span", "none").attrs["title"]
    assert [r.find("td", "num").text for r in rows] == [str(i) for i in range(len(rows))]


def test_index_tags_a_tail_call_frame_as_such_not_as_unknown_trust(tmp_path):
    root = write_artifacts(tmp_path / "a", [_with_tail_call(segv_crash(1))])
    group = parse_html(render_artifacts(root).index.read_text()).find("section", "group")
    item = next(li for li in group.find_all("li") if "build_list" in li.text)
    assert item.find("span", "tailcall").text == "tail call"
    assert "none?" not in group.text


def test_index_groups_show_fingerprint_and_classification(tmp_path):
    _, result = _job(tmp_path)
    groups = parse_html(result.index.read_text()).find_all("section", "group")
    ids = [g.find("div", "ids") for g in groups]
    assert [i.find("span", "classification").find("strong").text for i in ids] == ["null-deref", "abort"]
    assert [[s.find("code").text for s in i.find_all("span", "fingerprint")] for i in ids] == [
        [segv_crash()["fingerprint"]], [abort_crash()["fingerprint"]]]


def test_index_links_the_core_of_a_crash_without_analysis(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1)])
    summary = json.loads((root / "summary.json").read_text())
    (root / "002-core").mkdir()
    (root / "002-core" / "core.zst").write_bytes(b"")
    summary["crashes"].append({"id": "002-core", "crash_json": None, "core": "002-core/core.zst",
                               "stored": True, "note": "analysis failed: not an ELF core"})
    (root / "summary.json").write_text(json.dumps(summary))
    result = render_artifacts(root)
    group = next(g for g in parse_html(result.index.read_text()).find_all("section", "group") if "002-core" in g.text)
    link = group.find("a", "core")
    assert _resolves_inside(root, result.index, link.attrs["href"]) == (root / "002-core" / "core.zst").resolve()
    assert "analysis failed: not an ELF core" in group.text


CONTROL_EXE = "/bin/esc\x1b[31mprog\u202e"


def test_control_characters_are_shown_escaped_not_obeyed(tmp_path):
    crash = segv_crash(5, argv=(CONTROL_EXE, "bell\x07"), function="f\x1b]0;title\x07")
    crash["process"]["executable"] = crash["modules"][0]["path"] = CONTROL_EXE
    crash["threads"][0]["frames"][0]["module"] = CONTROL_EXE
    crash["signature"] = "SIGSEGV in f\x1b]0;title\x07"
    result = render_artifacts(write_artifacts(tmp_path / "a", [crash]))
    shown = "/bin/esc\\x1b[31mprog\\u202e"
    for page in (result.index, result.reports[0]):
        text = page.read_text()
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text)
        assert shown in text and "f\\x1b]0;title\\x07" in text
    doc = parse_html(result.reports[0].read_text())
    facts = dict(zip([dt.text for dt in doc.find_all("dt")], [dd.text for dd in doc.find_all("dd")]))
    assert facts["executable"] == shown and "bell\\x07" in facts["argv"]
    assert doc.by_id("modules").find("td").attrs["title"] == shown  # attributes too
    assert doc.by_id("crashing-thread").find_all("td")[3].attrs["title"] == shown
    index = parse_html(result.index.read_text())
    assert index.find("section", "group").find("div", "mono").text == shown


def test_crash_page_header_names_the_fingerprint():
    crash = segv_crash()
    doc = parse_html(render_crash_html(crash))
    assert doc.find("code", "fingerprint").text == crash["fingerprint"]


def test_source_cell_titles_the_full_path():
    """The source cell shows ``file:line`` as gdb does; the full path is its title, escaped."""
    crash = segv_crash()
    frames = crash["threads"][0]["frames"]
    frames[0]["source_path"] = '/home/ci/project/src/"><b>x</b>.c'
    rows = parse_html(render_crash_html(crash)).by_id("crashing-thread").find("tbody").find_all("tr")
    cells = [r.find("td", "loc") for r in rows]
    assert cells[0].text == f"{frames[0]['file']}:{frames[0]['line']}"
    assert cells[0].attrs["title"] == frames[0]["source_path"]
    assert all("title" not in c.attrs for c in cells[1:] if c is not None)


@pytest.mark.parametrize("crash_id,core_path", [("--gdb=sh", None), (None, "--exe=/bin/sh")])
def test_copyable_commands_never_start_an_operand_with_a_dash(crash_id, core_path):
    """The ids and core paths come from summary.json and crash.json: shown as operands."""
    import shlex

    from coredump.report.html import local_commands

    commands = local_commands(crash_id, core_path)
    assert commands
    for _label, command in commands:
        assert not any(word.startswith("-") for word in shlex.split(command)[2:]), command


def test_jit_frame_is_labelled_in_json_text_and_html(make_core):
    """c_samples/jit.c crashes in code it copied into an anonymous page (issue #15 item 5):
    frame 0 has no module and no name (gdb: `??`), and every report says it is JIT code."""
    from coredump.analysis import AnalyzeOptions, analyze_core
    from coredump.report.json import crash_to_dict
    from coredump.report.text import render_text
    from tests.cores import BUILD

    exe = BUILD / "O2" / "jit"
    crash = analyze_core(str(make_core("O2", "jit")), AnalyzeOptions(exe=str(exe)))
    data = crash_to_dict(crash)
    frames = data["threads"][data["crashing_thread"]]["frames"]
    assert frames[0]["jit"] is True and (frames[0]["function"], frames[0]["module"]) == (None, None)
    assert not [f for f in frames[1:] if "jit" in f] and frames[1]["function"] == "run_jitted"
    line = next(x for x in render_text(crash).splitlines() if x.lstrip().startswith("#0 "))
    assert line.endswith("in ??  [JIT code]"), line
    rows = parse_html(render_crash_html(data)).by_id("crashing-thread").find("tbody").find_all("tr")
    assert [r.find("td", "num").text for r in rows if r.find("span", "jit") is not None] == ["0"]
