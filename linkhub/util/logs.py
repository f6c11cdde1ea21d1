"""The server's logging set-up: one handler on stderr, as text or as JSON lines.

Every record (linkhub's, Hypercorn's, warnings, uncaught exceptions in threads) goes through
the root logger's one handler, so `--log-format json` makes every line of stderr a JSON object.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
# Written whatever the level: the start-up line (it tells the port chosen for --port 0) and,
# when asked for with --access-log, one line per request.
READY = "linkhub.ready"
ACCESS = "linkhub.access"


def _utc_rfc3339(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_rfc3339(record)


class JsonLinesFormatter(JsonFormatter):
    """{"time", "level", "logger", "message", then the record's extras}, one object a line."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_rfc3339(record)


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send every log record to stderr at `level` and above, in `fmt` ('text' or 'json')."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLinesFormatter() if fmt == "json" else
                         TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger(READY).setLevel(logging.INFO)
    logging.getLogger(ACCESS).setLevel(logging.INFO)
    # httpx logs every request at INFO, httpcore each step of it at DEBUG (response headers
    # included); deliveries are recorded in the deliveries table instead. psycopg's pool logs each
    # connection lent and returned at INFO; what goes wrong with one, it logs as a warning.
    for chatty in ("httpx", "httpcore", "psycopg.pool"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # Python's own warnings and exceptions that end a thread are records too, not stray stderr text.
    logging.captureWarnings(True)
    threading.excepthook = _log_thread_exception


def _log_thread_exception(args: Any) -> None:
    if args.exc_type is SystemExit:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("linkhub").critical("thread %s stopped: %r", thread, args.exc_value,
                                          exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
