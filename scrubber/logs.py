"""Structured JSON logs, one object per line, without PHI.

Log calls in the scrubber pass only topic, partition, offset, line ids and error types as
``extra`` fields; this formatter writes them as JSON keys. Free text from inputs never reaches a
log message, so the formatter does not need to (and does not try to) scrub it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)


class Throttle:
    """Yes at most once per ``seconds``: for a warning that can repeat with every line.

    A member id at the history's size limit drops lines with nearly every line it gets; its
    counter has every one, and the log needs one warning now and then, not thousands.
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._last: float | None = None

    def due(self) -> bool:
        """Whether to log now (and, if so, the next one waits ``seconds``)."""
        now = self.clock()
        if self._last is not None and now - self._last < self.seconds:
            return False
        self._last = now
        return True


#: How often a warning about a patient's size limit is logged at most (``Throttle``).
SIZE_LIMIT_WARNING_SECONDS = 60.0


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, and the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record, with exception type and traceback when there is one."""
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc_type"] = record.exc_info[0].__name__ if record.exc_info[0] else None
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def logging_config(level: str, fmt: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker and the CLI."""
    formatter: dict[str, Any] = (
        {"()": "scrubber.logs.JsonFormatter"}
        if fmt == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            # aiokafka and faust are chatty at INFO about every rebalance step.
            "aiokafka": {"level": "WARNING"},
            "faust": {"level": "WARNING" if level != "DEBUG" else "DEBUG"},
            "mode": {"level": "WARNING" if level != "DEBUG" else "DEBUG"},
        },
    }
