"""The terminal report: header lines and when colour is used."""

import io

import pytest

from coredump.analysis import analyze_core
from coredump.report.text import render_text, use_color


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("value, color", [(None, True), ("", True), ("1", False), ("0", False)])
def test_no_color_only_when_set_and_not_empty(monkeypatch, value, color):
    # no-color.org: NO_COLOR "when present and not an empty string" disables colour.
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    if value is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", value)
    assert use_color(_Tty()) is color
    assert use_color(io.StringIO()) is False


@pytest.mark.parametrize("force, no_color, color", [("1", None, True), ("true", None, True), ("", None, False),
                                                     ("0", None, False), ("1", "1", False)])
def test_force_color_off_a_tty(make_core, force, no_color, color):
    """force-color.org: FORCE_COLOR colours a pipe (a CI log); NO_COLOR still wins."""
    import os
    import subprocess

    from tests.cli import command
    from tests.cores import ROOT

    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update({"PYTHONPATH": str(ROOT), "FORCE_COLOR": force, **({"NO_COLOR": no_color} if no_color else {})})
    out = subprocess.run(command("analyze", str(make_core("O0", "segv"))), capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert ("\x1b[" in out.stdout) is color


def test_header_has_signature_classification_fingerprint(make_core):
    crash = analyze_core(str(make_core("O0", "segv")))
    assert crash.classification and crash.fingerprint
    header = render_text(crash).split("\n\n", 1)[0].splitlines()
    keys = [line.strip().split(":", 1)[0] for line in header[2:]]
    assert keys[keys.index("signature"):keys.index("signature") + 3] == [
        "signature", "classification", "fingerprint"]
    assert f"  classification: {crash.classification}" in header
    assert f"  fingerprint: {crash.fingerprint}" in header
