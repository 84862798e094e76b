"""
S3 throughput
=============

Upload and fetch one artifact directory holding a 100 MB core through ``coredump.store``
against a local ``moto.server`` and print MB/s (``python scripts/bench_s3.py [MB]``).
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.s3server import _free_port, _wait_until_serving, make_artifact_dir  # noqa: E402

__all__ = ()


def main(megabytes: int = 100) -> None:
    from coredump.store.s3 import make_client, upload_artifacts
    from coredump.store.s3fetch import fetch_artifacts

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    try:
        _wait_until_serving(proc, endpoint)
        make_client().create_bucket(Bucket="bench")
        with tempfile.TemporaryDirectory() as tmp:
            core = os.urandom(megabytes * 1000 * 1000)
            art = make_artifact_dir(Path(tmp, "art"), crashes=(("c1", "aa11"),), core_bytes=core)
            start = time.perf_counter()
            upload_artifacts(art, "s3://bench/p", job="j1")
            up = time.perf_counter() - start
            start = time.perf_counter()
            fetch_artifacts("s3://bench/p/j1", Path(tmp, "dest"))
            down = time.perf_counter() - start
            assert Path(tmp, "dest", "c1", "core.zst").read_bytes() == core
        print(f"{megabytes} MB core: upload {up:.2f} s ({megabytes / up:.0f} MB/s), "
              f"fetch {down:.2f} s ({megabytes / down:.0f} MB/s)")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
