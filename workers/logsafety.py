"""Log safeguards for every llmrec process: repeats rate-limited, messages bounded, no payloads.

Why: during a broker outage aiokafka and Faust log the same ERROR line up to ~2,800 times a
second, and a pydantic `ValidationError` quotes the offending input (a review's text) as
`input_value=...` in its message, which a traceback prints, cause chain included.

How, kept deliberately simple:
- One `logging.Filter` (`LogSafetyFilter`) on the root logger's *handlers* (a filter on the root
  logger itself never sees records propagated from child loggers). A filter works under any
  formatter, so the Faust worker keeps its coloured one.
- Rate limit: key = (logger name, level, message template before `%` args). At most `burst`
  records per key per `window_s`; the first record shown after suppression ends with
  "[N similar suppressed since the last one shown]".
- Messages: `scrub` replaces every pydantic `input_value=...` with `<redacted>`, then cuts the
  message to `max_message` characters.
- Tracebacks: the filter renders `record.exc_text`, which every `logging.Formatter` prints instead
  of calling its own `formatException`. Frames (file, line, function, source line) are kept: they
  are code, not data. Each exception's message in the cause/context chain is scrubbed and cut to
  `max_exc_message` characters. That keeps "Connection refused" and an `InvalidRecordError`'s
  reason (both useful, neither a payload) while a chained `ValidationError` loses its inputs.
  A denylist of exception types was the alternative; it misses any wrapper that quotes one.

This bounds what leaks; it does not make `log.info("%s", review)` safe. Log ids and types only.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

__all__ = ["LogSafetyFilter", "format_exception_safely", "install", "scrub"]

_INPUT = "input_value="
_INPUT_END = ", input_type="
_MAX_CHAIN = 16  # exceptions rendered per traceback (cause/context links and group members)


def scrub(text: str, limit: int) -> str:
    """`text` with pydantic's quoted inputs redacted, cut to `limit` characters."""
    if _INPUT in text:
        text = "\n".join(_scrub_line(line) for line in text.split("\n"))
    if len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit} chars cut]"
    return text


def _scrub_line(line: str) -> str:
    # pydantic writes `[type=…, input_value=<repr>, input_type=…]` on one line (a repr has no
    # raw newline); redact from the first input_value= to the LAST input_type= on the line, so
    # an input that itself contains ", input_type=" cannot end the redaction early.
    head, sep, rest = line.partition(_INPUT)
    if not sep:
        return line
    _, found, tail = rest.rpartition(_INPUT_END)
    return f"{head}{_INPUT}<redacted>{found}{tail}" if found else f"{head}{_INPUT}<redacted>"


def format_exception_safely(exc: BaseException, max_message: int = 200) -> str:
    """A traceback like Python's, with every exception message scrubbed and cut."""
    lines: list[str] = []
    _render(exc, lines, set(), max_message, indent="")
    return "".join(lines).rstrip("\n")


def _render(exc: BaseException, out: list[str], seen: set[int], limit: int, indent: str) -> None:
    if len(seen) >= _MAX_CHAIN:
        out.append(f"{indent}[further chained exceptions omitted]\n")
        return
    seen.add(id(exc))
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        _render(cause, out, seen, limit, indent)
        out.append(
            f"\n{indent}The above exception was the direct cause of the following exception:\n\n"
        )
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        _render(context, out, seen, limit, indent)
        out.append(
            f"\n{indent}During handling of the above exception, another exception occurred:\n\n"
        )
    if exc.__traceback__ is not None:
        out.append(f"{indent}Traceback (most recent call last):\n")
        frames = traceback.extract_tb(exc.__traceback__).format()
        out.extend(indent + line.replace("\n", "\n" + indent).rstrip(" ") for line in frames)
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not break logging
        message = "<unprintable message>"
    name = type(exc).__qualname__
    text = scrub(message, limit).replace("\n", "\n" + indent)
    out.append(f"{indent}{name}: {text}\n" if text else f"{indent}{name}\n")
    for note in getattr(exc, "__notes__", None) or ():
        out.append(f"{indent}{scrub(str(note), limit)}\n")
    if isinstance(exc, BaseExceptionGroup):
        for i, sub in enumerate(exc.exceptions, 1):
            if id(sub) in seen:
                continue
            out.append(f"{indent}+---------------- {i} ----------------\n")
            _render(sub, out, seen, limit, indent + "| ")


class _Window:
    __slots__ = ("passed", "start", "suppressed")

    def __init__(self, start: float) -> None:
        self.start = start
        self.passed = 0
        self.suppressed = 0


class LogSafetyFilter(logging.Filter):
    """Rate-limits repeated records and scrubs messages and tracebacks (see module docstring).

    One instance may sit on several handlers: a record is judged once (the verdict is stored on
    it), so it is neither counted twice nor rewritten twice.
    """

    _MARK = "_llmrec_log_safety"

    def __init__(
        self,
        *,
        burst: int = 5,
        window_s: float = 10.0,
        max_message: int = 2000,
        max_exc_message: int = 200,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.max_message = max_message
        self.max_exc_message = max_exc_message
        self.max_keys = max_keys
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()  # handlers call filters outside their own lock

    def filter(self, record: logging.LogRecord) -> bool:
        verdict = getattr(record, self._MARK, None)
        if verdict is not None:
            return bool(verdict)
        suppressed = self._admit(record)
        if suppressed is not None:
            self._sanitize(record, suppressed)
        setattr(record, self._MARK, suppressed is not None)
        return suppressed is not None

    def _admit(self, record: logging.LogRecord) -> int | None:
        """None: drop the record; else how many similar records were dropped before it."""
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        key = (record.name, record.levelno, template)
        now = self._clock()
        with self._lock:
            win = self._windows.get(key)
            if win is None:
                if len(self._windows) >= self.max_keys:
                    self._prune(now)
                win = self._windows[key] = _Window(now)
            elif now - win.start >= self.window_s:
                dropped = win.suppressed
                win.start, win.passed, win.suppressed = now, 1, 0
                return dropped
            if win.passed < self.burst:
                win.passed += 1
                return 0
            win.suppressed += 1
            return None

    def _prune(self, now: float) -> None:
        # Closed windows first; a count still unreported is lost only in this overflow case.
        closed = [k for k, w in self._windows.items() if now - w.start >= self.window_s]
        for k in closed:
            del self._windows[k]
        if len(self._windows) >= self.max_keys:  # every window still open: start afresh
            self._windows.clear()

    def _sanitize(self, record: logging.LogRecord, suppressed: int) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format call: leave it to the handler, which reports it
            message = None
        if message is not None:
            clean = scrub(message, self.max_message)
            if clean != message:
                # `()` not None: mode's formatter wraps a non-tuple args into a 1-tuple
                record.msg, record.args = clean, ()
        if suppressed:
            # the note holds no `%`, so it is safe to append to a template that still has args
            record.msg = f"{record.msg} [{suppressed} similar suppressed since the last one shown]"
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            record.exc_text = format_exception_safely(exc, self.max_exc_message)


_installed: LogSafetyFilter | None = None


def install(logger: logging.Logger | None = None) -> LogSafetyFilter:
    """Put the process's one `LogSafetyFilter` on every handler of `logger` (default: root).

    Idempotent; call it again after anything replaces the handlers (the Faust worker does).
    """
    global _installed  # noqa: PLW0603 - one filter per process keeps one set of counters
    if _installed is None:
        _installed = LogSafetyFilter()
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    return _installed
