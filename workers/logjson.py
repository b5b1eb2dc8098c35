"""JSON log lines (`LLMREC_LOG_FORMAT=json`): one object a line, for log collectors.

Each line holds `ts` (UTC, ISO 8601 with milliseconds), `level`, `logger` and `message`, and
`exc` when the record carries a traceback. A formatter only: `workers.logsafety`'s filter on
the same handlers still rate-limits and scrubs first (a handler filters a record before it
formats it), and the traceback it renders (`record.exc_text`) is the one written here.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

__all__ = ["JsonFormatter", "apply"]


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: ts, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, str] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(doc, ensure_ascii=False)


def apply(logger: logging.Logger, log_format: Literal["text", "json"]) -> None:
    """Give every handler of `logger` the JSON formatter when `log_format` is "json"; with
    "text" the handlers keep theirs (the Faust worker's coloured one)."""
    if log_format != "json":
        return
    formatter = JsonFormatter()
    for handler in logger.handlers:
        handler.setFormatter(formatter)
