"""analyze_core as a whole: what it says when files are missing."""

import shutil

from coredump.analysis import analyze_core
from tests import cores


def test_a_missing_executable_is_one_warning_that_says_what_to_do(make_core, tmp_path):
    exe = tmp_path / "segv"
    shutil.copy(cores.BUILD / "O0" / "segv", exe)
    work = tmp_path / "run"
    work.mkdir()
    _, core = cores.run_crash([str(exe)], work)
    assert core is not None
    exe.unlink()
    crash = analyze_core(str(core))
    about_exe = [w for w in crash.warnings if str(exe) in w]
    assert len(about_exe) == 1 and "--exe" in about_exe[0], crash.warnings
    assert crash.threads[0].frames[0].module_offset is not None  # still module+offset frames
