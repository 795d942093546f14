"""Structured logs: one JSON object per line on stderr.

Request lines come from the ``shopsearch.serve.access`` logger with their fields in
``extra={"fields": {...}}``: method, route template, status, ms, key name (never the key).
"""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["ACCESS_LOGGER", "JsonFormatter", "configure_logging"]

ACCESS_LOGGER = "shopsearch.serve.access"


class JsonFormatter(logging.Formatter):
    """``{"time": ..., "level": ..., "logger": ..., "pid": ..., "message": ..., **fields}``; an
    exception's traceback goes into ``"exc"`` (in the log, never in a response)."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted (one per line is slow)

    def format(self, record: logging.LogRecord) -> str:
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        data: dict[str, object] = {
            "time": f"{text}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,  # which worker process (serve --workers N)
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str = "info") -> None:
    """JSON lines on stderr for shopsearch's and uvicorn's loggers."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # ours has the route and the key name
