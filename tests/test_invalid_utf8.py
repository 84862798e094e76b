"""Invalid UTF-8 in argv, the executable's path and NT_FILE names (#13 item 10): shown
escaped (``\\xe9``) by every printer and serializer, never a traceback or a lost harvest."""

import json
import os
import shutil
import subprocess

import pytest

from tests.cli import command
from tests.coreedit import rename_mapped_file
from tests.cores import BUILD, ROOT

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
ARG = b"caf\xe9"
SHOWN = "caf\\xe9"  # how every output spells the byte 0xe9 that is no UTF-8


def coredump(cwd, *args):
    """Run coredump; stdout and stderr as bytes, which must be strict UTF-8."""
    out = subprocess.run(command(*args), cwd=cwd, env=ENV, capture_output=True, timeout=300)
    return out.returncode, out.stdout.decode("utf-8"), out.stderr.decode("utf-8")


def strict_json(path):
    return json.loads(path.read_bytes().decode("utf-8"))


@pytest.fixture
def odd_core(make_core, tmp_path):
    """A real core whose NT_FILE names the executable /tmp/caf\\xe9/segv."""
    core = tmp_path / "job" / "core"
    core.parent.mkdir()
    shutil.copyfile(make_core("O0", "segv"), core)
    assert rename_mapped_file(core, str(BUILD / "O0" / "segv"), b"/tmp/" + ARG + b"/segv") > 0
    return core


def test_run_with_an_invalid_utf8_argument_writes_every_artifact(make_core, tmp_path):
    rc = subprocess.run(command("run", "--", os.fsdecode(BUILD / "O0" / "segv"), os.fsdecode(ARG)), cwd=tmp_path,
                        env=ENV, capture_output=True, timeout=300)
    stderr = rc.stderr.decode("utf-8")
    assert rc.returncode == 139, stderr
    assert "error while collecting" not in stderr and "Traceback" not in stderr
    art = tmp_path / "coredump-artifacts"
    summary = strict_json(art / "summary.json")
    assert summary["command"][-1] == SHOWN
    (crash,) = summary["crashes"]
    assert strict_json(art / crash["crash_json"])["process"]["argv"][-1] == SHOWN
    assert (art / crash["core"]).stat().st_size > 0
    assert SHOWN in (art / "index.html").read_bytes().decode("utf-8")
    (art / "junit.xml").read_bytes().decode("utf-8")


def test_analyze_json_is_valid_utf8(odd_core, tmp_path):
    rc, out, err = coredump(tmp_path, "analyze", "--format", "json", str(odd_core))
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["process"]["executable"] == f"/tmp/{SHOWN}/segv"
    assert f"/tmp/{SHOWN}/segv" in [m["path"] for m in doc["modules"]]


def test_analyze_text_shows_the_byte_escaped(odd_core, tmp_path):
    rc, out, err = coredump(tmp_path, "analyze", str(odd_core))
    assert rc == 0, err
    assert f"/tmp/{SHOWN}/segv" in out


def test_harvest_and_report_keep_going(odd_core, tmp_path):
    art = tmp_path / "art"
    rc, out, err = coredump(tmp_path, "harvest", "--output", str(art), "--path", str(odd_core.parent))
    assert rc == 0 and "Traceback" not in err and "internal error" not in err, err
    (crash,) = strict_json(art / "summary.json")["crashes"]
    assert crash["executable"] == f"/tmp/{SHOWN}/segv"
    assert f"/tmp/{SHOWN}/segv" in (art / "index.html").read_bytes().decode("utf-8")
    rc, out, err = coredump(tmp_path, "report", str(art), "-o", str(tmp_path / "out"))
    assert rc == 0 and "Traceback" not in err and "internal error" not in err, err
    assert strict_json(tmp_path / "out" / "summary.json")["crashes"][0]["executable"] == f"/tmp/{SHOWN}/segv"
