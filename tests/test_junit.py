import json
import xml.etree.ElementTree as ET

from coredump.report.junit import crash_failure_text, render_junit
from coredump.report.render import render_artifacts
from tests.crash_samples import abort_crash, segv_crash, write_artifacts


def test_one_testcase_per_signature_named_by_it_alone():
    crashes = [("001", segv_crash(1)), ("002", abort_crash(2)), ("003", segv_crash(3))]
    root = ET.fromstring(render_junit(crashes, workspace="/"))
    suite = root.find("testsuite")
    assert suite.get("tests") == suite.get("failures") == "2"
    cases = suite.findall("testcase")
    # the name is the same in every run: no pid, no crash id (those are properties)
    assert [c.get("name") for c in cases] == [crashes[0][1]["signature"], crashes[1][1]["signature"]]
    props = {p.get("name"): p.get("value") for p in cases[0].findall("properties/property")}
    assert (props["crashes"], props["crash_ids"], props["pids"]) == ("2", "001,003", "1,3")
    failure = cases[0].find("failure")
    assert failure.get("message") == crashes[0][1]["signature"] and failure.get("type") == "SIGSEGV"
    lines = failure.text.splitlines()
    assert lines[0] == "SIGSEGV (SEGV_MAPERR) at 0x0"
    start = lines.index("Crashing thread (LWP 1):")
    assert lines[start + 1].split()[:4] == ["#0", "0x5581c3a01139", "in", "store_value"]
    assert lines[start + 6].endswith("[found by scan]")
    assert (cases[0].get("file"), cases[0].get("line")) == ("src/store.c", "42")


def test_abort_points_at_own_code_not_libc():
    case = ET.fromstring(render_junit([("x", abort_crash())])).find("testsuite/testcase")
    assert (case.get("file"), case.get("line")) == ("src/config.c", "57")
    assert "Assertion `port > 0' failed." in case.find("failure").text


def test_hostile_crash_data_stays_well_formed():
    argv = ("./p", "<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "]]></failure><x>",
            "\x00\x1b[31m\x07")
    crash = segv_crash(7, argv=argv, function="f<&\"'>\x01", file="a\"b'<c>&.c")
    crash["signature"] = "SIGSEGV in f<&\"'>]]>\x0c"
    text = render_junit([("id\x00\"<", crash)])
    case = ET.fromstring(text).find("testsuite/testcase")
    failure = case.find("failure")
    assert "<script>alert(1)</script>" in failure.text and "]]></failure><x>" in failure.text
    assert "f<&\"'>" in failure.text and case.get("file") == "a\"b'<c>&.c"
    assert "\x1b" not in text and "\x00" not in text and "\x07" not in text


def test_artifact_directory_gets_junit(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    render_artifacts(root)
    cases = ET.parse(root / "junit.xml").getroot().findall("testsuite/testcase")
    assert len(cases) == 1 and "[" not in cases[0].get("name")
    props = {p.get("name"): p.get("value") for p in cases[0].findall("properties/property")}
    assert props["crash_ids"] == "001-1,002-2"


def test_file_is_relative_to_the_ci_workspace(monkeypatch, tmp_path):
    crash = segv_crash(1)
    frame = next(f for f in crash["threads"][0]["frames"] if f.get("file"))
    frame["source_path"] = str(tmp_path / "repo" / "src" / "store.c")
    monkeypatch.setenv("CI_PROJECT_DIR", str(tmp_path / "repo"))  # GitLab's checkout
    case = ET.fromstring(render_junit([("1", crash)])).find("testsuite/testcase")
    assert case.get("file") == "src/store.c"


def test_a_stripped_executable_points_at_no_system_file():
    """With no line in the program's own code, file/line stay out rather than name libc's."""
    crash = segv_crash(1)
    frames = crash["threads"][0]["frames"]
    for f in frames:
        if not str(f.get("module", "")).startswith(("/usr/", "/lib")):
            f["file"] = f["line"] = f["source_path"] = None
    frames.append(dict(frames[-1], index=len(frames), module="/usr/lib/x86_64-linux-gnu/libc.so.6",
                       file="../sysdeps/nptl/libc_start_call_main.h", line=58))
    case = ET.fromstring(render_junit([("1", crash)])).find("testsuite/testcase")
    assert case.get("file") is None and case.get("line") is None


def test_failure_text_without_threads():
    assert crash_failure_text({"signal": {"name": "SIGKILL"}}) == "SIGKILL"


def test_tail_call_frame_says_so_not_found_by_none():
    crash = segv_crash(1)
    frames = crash["threads"][0]["frames"]
    put_back = dict(frames[1], index=2, function="build_list", trust="none", tailcall=True)
    crash["threads"][0]["frames"] = frames[:2] + [put_back] + [dict(f, index=f["index"] + 1) for f in frames[2:]]
    text = crash_failure_text(crash)
    line = next(x for x in text.splitlines() if " build_list " in x)
    assert line.endswith("[tail call]")


def test_fingerprint_and_classification_are_properties():
    crashes = [("001", segv_crash(1)), ("002", abort_crash(2))]
    cases = ET.fromstring(render_junit(crashes)).findall("testsuite/testcase")
    for case, (crash_id, crash) in zip(cases, crashes):
        props = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
        assert props == {"fingerprint": crash["fingerprint"], "classification": crash["classification"],
                         "crashes": "1", "crash_ids": crash_id, "pids": str(crash["process"]["pid"])}
        assert [child.tag for child in case] == ["properties", "failure"]
    bare = dict(segv_crash(3), fingerprint=None, classification=None)
    props = ET.fromstring(render_junit([("003", bare)])).findall("testsuite/testcase/properties/property")
    assert {p.get("name") for p in props} == {"crashes", "crash_ids", "pids"}


def _unanalyzed_entry(root, crash_id="003-core"):
    """A summary entry as harvest writes it for a core it stored but could not analyse."""
    from coredump.store.artifacts import CrashRecord

    (root / crash_id).mkdir()
    (root / crash_id / "core.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    record = CrashRecord(id=crash_id, source="/cores/core.9", core=f"{crash_id}/core.zst", stored=True)
    record.add_note("analysis failed: no NT_PRSTATUS note")
    return record.to_dict()


def test_crash_without_analysis_is_a_failed_testcase(tmp_path):
    root = write_artifacts(tmp_path / "a", [segv_crash(1), segv_crash(2)])
    summary = json.loads((root / "summary.json").read_text())
    summary["crashes"].append(_unanalyzed_entry(root))
    (root / "summary.json").write_text(json.dumps(summary))
    render_artifacts(root)
    suite = ET.parse(root / "junit.xml").getroot().find("testsuite")
    assert suite.get("tests") == suite.get("failures") == "2"
    case = suite.findall("testcase")[1]
    assert case.get("name") == "crash: could not be analysed"
    failure = case.find("failure")
    assert failure.get("message") == "analysis failed: no NT_PRSTATUS note"
    assert failure.text.splitlines() == ["analysis failed: no NT_PRSTATUS note", "core: 003-core/core.zst"]


def _job_junit(tmp_path):
    crashes = [segv_crash(1), abort_crash(2), segv_crash(3)]
    root = write_artifacts(tmp_path / "a", crashes)
    summary = json.loads((root / "summary.json").read_text())
    summary["crashes"].append(_unanalyzed_entry(root))
    summary["crashes"][1]["expected"] = "a googletest death test's child"
    (root / "summary.json").write_text(json.dumps(summary))
    render_artifacts(root)
    return root / "junit.xml"


def test_junit_validates_against_the_junit_schema(tmp_path):
    from tests.junit_schema import violations

    path = _job_junit(tmp_path)
    assert violations(ET.parse(path).getroot()) == []
    # the check can fail: an element out of place is found
    broken = ET.parse(path).getroot()
    ET.SubElement(broken.find("testsuite/testcase"), "bogus")
    assert violations(broken) == ["<bogus> may not be in <testcase>"]


def test_junitparser_reads_what_ci_tools_read(tmp_path):
    """junitparser (what many CI integrations use) sees one case per signature, failures with
    their type and message, and the expected crash as a passed case."""
    from junitparser import Failure, JUnitXml

    xml = JUnitXml.fromfile(str(_job_junit(tmp_path)))
    (suite,) = list(xml)
    cases = list(suite)
    assert len(cases) == 3 and suite.tests == 3 and suite.failures == 2
    by_name = {c.name: c for c in cases}
    segv = by_name[segv_crash(1)["signature"]]
    (failure,) = [r for r in segv.result if isinstance(r, Failure)]
    assert failure.type == "SIGSEGV" and failure.message == segv_crash(1)["signature"]
    assert by_name[abort_crash(2)["signature"]].is_passed
    assert by_name["crash: could not be analysed"].result[0].type == "unanalyzed"
