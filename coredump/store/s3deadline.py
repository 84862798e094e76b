"""
S3 deadline
===========

One total time budget for every request an S3 client makes: botocore's own timeouts bound a
single attempt, not the attempts and backoff sleeps of its retries (5 attempts of a 60 s read
held one upload for 302 s on an endpoint that accepted connections and never answered).
"""

from __future__ import annotations

import time

from coredump.errors import StorageError

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing imports re: ~3 ms of start-up for annotations only
    from typing import Optional

__all__ = ("Deadline", "DeadlineExceeded", "CONNECT_TIMEOUT", "READ_TIMEOUT", "DEFAULT_TIMEOUT")

#: Seconds to open a TCP connection; also the socket timeout while a request body is sent
#: (urllib3 applies the connect timeout to ``conn.request()``).
CONNECT_TIMEOUT = 5.0
#: Seconds of silence while waiting for a response; S3 answers a PutObject/UploadPart of
#: 8 MiB in well under this, a hanging endpoint never does.
READ_TIMEOUT = 20.0
#: The default total budget of one upload or fetch (``--timeout``).
DEFAULT_TIMEOUT = 600.0

# Sent even after the deadline: s3transfer aborts a failed multipart upload, and an upload
# left open is billed until a lifecycle rule removes it (S3 User Guide, "Aborting a
# multipart upload"). Its own read timeout still bounds it.
_ALWAYS_SENT = ("AbortMultipartUpload",)


class DeadlineExceeded(StorageError):
    """The budget ran out; the message says what was being done and the last failure."""


class Deadline:
    """``seconds`` from now for everything ``what`` (e.g. ``upload to s3://b/p/j1``) sends.

    :meth:`attach` hooks botocore's ``before-send`` (no request starts after the deadline)
    and ``needs-retry`` (no backoff sleep or retry after it) events of a client.
    """

    def __init__(self, seconds: float, what: str):
        self.seconds, self.what = float(seconds), what
        self.expires = time.monotonic() + self.seconds
        self.last: Optional[str] = None  # the last failed attempt, for the message

    def remaining(self) -> float:
        return self.expires - time.monotonic()

    def timeouts(self) -> dict:
        """botocore ``Config`` timeouts: short, and never longer than the whole budget."""
        return {"connect_timeout": min(CONNECT_TIMEOUT, self.seconds),
                "read_timeout": min(READ_TIMEOUT, self.seconds)}

    def attach(self, client) -> None:
        client.meta.events.register("before-send.s3", self._before_send)
        client.meta.events.register("needs-retry.s3", self._needs_retry)

    def error(self) -> DeadlineExceeded:
        last = f"; last error: {self.last}" if self.last else ""
        return DeadlineExceeded(f"{self.what} did not finish within its {self.seconds:g} s deadline{last}")

    def _before_send(self, event_name: str = "", **kwargs) -> None:
        if self.remaining() <= 0 and event_name.rsplit(".", 1)[-1] not in _ALWAYS_SENT:
            raise self.error()

    def _needs_retry(self, response=None, caught_exception=None, **kwargs) -> None:
        """Called after every attempt; returns None so botocore's own retry handler decides."""
        failure = _describe_failure(response, caught_exception)
        if failure is None:
            return
        self.last = failure
        if self.remaining() <= 0:
            raise self.error()


def _describe_failure(response, caught_exception) -> Optional[str]:
    """A failed attempt in words, or None for one botocore will not retry (2xx-4xx answers;
    S3's throttles are 503 SlowDown, and a 5xx is what the retry modes retry)."""
    if caught_exception is not None:
        return " ".join(str(caught_exception).split())
    if not response:
        return None
    http, parsed = response
    if http.status_code < 500 and http.status_code != 429:
        return None
    code = (parsed or {}).get("Error", {}).get("Code", "")
    return f"HTTP {http.status_code} {code}".strip()
