"""
Screenshots
===========

``make screenshots``: run a real job under ``coredump run`` (two identical crashes, a
crash in one thread of many, a failed assertion, from c_samples/) and photograph its pages
with headless Chromium into docs/screenshots/ for the README. Where this machine writes no
cores, the sample crash dicts of tests/crash_samples.py stand in.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from coredump.report.render import render_artifacts  # noqa: E402
from tests.crash_samples import abort_crash, segv_crash, write_artifacts  # noqa: E402

__all__ = ("chromium", "chromium_args", "screenshot", "main")

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium():
    """The headless browser's path, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def chromium_args(browser: str, profile: str) -> list:
    """Headless, offline, no first-run work; --no-sandbox because CI runs as root."""
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}"]


def screenshot(page: Path, out: Path, size=(1280, 1000), dark: bool = False, timeout: float = 60) -> None:
    browser = chromium()
    if browser is None:
        raise SystemExit("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="coredump-chromium-") as profile:
        args = chromium_args(browser, profile) + [f"--screenshot={out}", f"--window-size={size[0]},{size[1]}"]
        if dark:
            args.append("--force-dark-mode")
        subprocess.run(args + [page.as_uri()], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def real_job(workdir: Path):
    """The artifact directory of a real `coredump run` over crashing samples, or None."""
    from tests.cores import BUILD, build_samples, core_skip_reason

    if core_skip_reason():
        return None
    build_samples()
    # One directory per crash: core_pattern "core" makes crashes in one directory overwrite
    # each other's core.
    step = "; ".join(f"mkdir {i} && (cd {i} && {BUILD / 'O2' / prog} {arg})" for i, (prog, arg) in
                     enumerate((("segv", ""), ("segv", "again"), ("threads", ""), ("abort_assert", ""))))
    subprocess.run([sys.executable, "-c", "from coredump.cli.entry import main; main()", "run", "--",
                    "sh", "-c", step], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = workdir / "coredump-artifacts"
    return root if (root / "summary.json").exists() else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coredump-sample-") as tmp:
        root = real_job(Path(tmp)) or write_artifacts(Path(tmp) / "coredump-artifacts",
                                                      [segv_crash(4242), abort_crash(5151), segv_crash(4301)])
        result = render_artifacts(root)
        threads = [p for p in result.reports if p.parent.name.startswith("threads-")]
        result.reports[:0] = threads
        shots = [(result.index, "index.png", (1280, 900), False),
                 (result.reports[0], "report.png", (1280, 1500), False),
                 (result.reports[0], "report-dark.png", (1280, 1000), True)]
        for page, name, size, dark in shots:
            screenshot(page, out / name, size, dark)
            print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
