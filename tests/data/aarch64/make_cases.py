"""Regenerate the committed aarch64 snapshot cases
==================================================

Builds a static c_samples/ program for aarch64, runs it under qemu-aarch64 for a core and
writes ``<case>.zst`` (the executable), ``<case>.core.zst`` and ``<case>.analysis.json``
beside this script. Needs qemu-user and gcc-aarch64-linux-gnu; the tests that read the
cases need neither. Usage, from the checkout's root::

    python tests/data/aarch64/make_cases.py [CASE ...]      # default: every case

Static executables only: they need no sysroot to be analyzed, so nothing else is shipped.
"""

import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
SAMPLES = ROOT / "c_samples"
BUILD = SAMPLES / "build"
CC = "aarch64-linux-gnu-gcc"

# case -> (c_samples/build/ variant, program). aarch64-static is the Makefile's -O0 -g -static;
# aarch64-static-O2 (-O2 -g -fomit-frame-pointer -static) is built here only: no test builds it.
CASES = {
    "segv-static": ("aarch64-static", "segv"),
    "threads-static": ("aarch64-static", "threads"),
    "sighandler-static": ("aarch64-static", "sighandler"),
    "segv-static-O2": ("aarch64-static-O2", "segv"),
}
FLAGS = {"aarch64-static-O2": ["-O2", "-g", "-fomit-frame-pointer", "-static"]}

__all__ = ["CASES", "build", "make_core", "compress", "main"]


def build(variant: str, program: str) -> Path:
    exe = BUILD / variant / program
    if variant in FLAGS:
        exe.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([CC, *FLAGS[variant], "-o", str(exe), str(SAMPLES / f"{program}.c"), "-pthread"], check=True)
    else:
        subprocess.run(["make", "-s", "-C", str(SAMPLES), "-j2", str(exe.relative_to(SAMPLES))], check=True)
    return exe


def _raise_core_limit() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def make_core(exe: Path, workdir: Path) -> Path:
    """The core qemu-aarch64 writes for a copy of `exe` run as ./<name> in an empty directory
    with an empty environment: no path or variable of this machine on the guest's stack."""
    shutil.copy(exe, workdir / exe.name)
    subprocess.run(["env", "-i", shutil.which("qemu-aarch64"), f"./{exe.name}"], cwd=workdir,
                   preexec_fn=_raise_core_limit, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)
    for host_core in workdir.glob("core*"):
        host_core.unlink()  # qemu itself died of the guest's signal: the host's core of qemu
    cores = sorted(workdir.glob("qemu_*.core"))
    if len(cores) != 1:
        raise SystemExit(f"qemu-aarch64 ./{exe.name} left {len(cores)} guest cores")
    return cores[0]


def compress(src: Path, dest: Path) -> None:
    import zstandard

    dest.write_bytes(zstandard.ZstdCompressor(level=19).compress(src.read_bytes()))


def main(argv) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.test_aarch64_cores import write_snapshot

    for case in argv or list(CASES):
        variant, program = CASES[case]
        exe = build(variant, program)
        with tempfile.TemporaryDirectory() as tmp:
            core = make_core(exe, Path(tmp))
            compress(exe, HERE / f"{case}.zst")
            compress(core, HERE / f"{case}.core.zst")
        write_snapshot(case)
        sizes = ", ".join(f"{p.name} {p.stat().st_size // 1024} KiB" for p in sorted(HERE.glob(f"{case}.*")))
        print(f"{case}: {sizes}")


if __name__ == "__main__":
    main(sys.argv[1:])
