"""Log safeguards: repeats rate-limited with the count reported, messages cut, no review text."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from mode.utils.logging import ExtensionFormatter
from pydantic import BaseModel

from llmrec.exceptions import InvalidRecordError
from workers.logsafety import LogSafetyFilter, install, scrub

SECRET = "my neighbour's dog ate my review, input_type=str, and the sequel"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def sink(clock: _Clock) -> Iterator[tuple[logging.Logger, _Collect]]:
    logger = logging.getLogger(f"test.logsafety.{id(clock)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = _Collect()
    handler.addFilter(LogSafetyFilter(burst=5, window_s=10.0, clock=clock))
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


class _Review(BaseModel):
    rating: float


def _validation_error() -> Exception:
    try:
        _Review.model_validate({"rating": SECRET})
    except Exception as exc:
        return exc
    raise AssertionError("validation passed")


def test_repeats_beyond_the_burst_are_suppressed_and_counted(
    sink: tuple[logging.Logger, _Collect], clock: _Clock
) -> None:
    logger, out = sink
    for i in range(12):
        logger.error("broker %s unreachable", i)
        clock.now += 0.1
    assert out.lines == [f"ERROR {logger.name}: broker {i} unreachable" for i in range(5)]

    clock.now += 10.0  # the window closes
    logger.error("broker %s unreachable", 99)
    assert out.lines[-1].endswith(
        "broker 99 unreachable [7 similar suppressed since the last one shown]"
    )
    logger.error("broker %s unreachable", 100)  # a new window: passes, nothing to report
    assert out.lines[-1].endswith("broker 100 unreachable")


def test_the_key_is_logger_level_and_template(
    sink: tuple[logging.Logger, _Collect], clock: _Clock
) -> None:
    logger, out = sink
    for _ in range(6):
        logger.error("a %s", 1)
        logger.warning("a %s", 1)  # same template, other level
        logger.error("b %s", 1)  # same level, other template
    assert len(out.lines) == 15
    assert out.lines.count(f"ERROR {logger.name}: a 1") == 5


def test_a_record_is_judged_once_across_handlers(clock: _Clock) -> None:
    logger = logging.getLogger("test.logsafety.two-handlers")
    logger.propagate = False
    shared = LogSafetyFilter(burst=2, window_s=10.0, clock=clock)
    first, second = _Collect(), _Collect()
    for h in (first, second):
        h.addFilter(shared)
        logger.addHandler(h)
    try:
        for _ in range(3):
            logger.error("same")
    finally:
        logger.removeHandler(first)
        logger.removeHandler(second)
    assert len(first.lines) == len(second.lines) == 2


def test_long_messages_are_cut(sink: tuple[logging.Logger, _Collect]) -> None:
    logger, out = sink
    logger.info("payload %s", "x" * 5000)
    assert len(out.lines[0]) < 2100
    assert out.lines[0].endswith("… [3008 chars cut]")
    logger.info("short %s", "y")
    assert out.lines[1].endswith("short y")


def test_a_cut_message_with_percent_still_formats_under_the_worker_formatter() -> None:
    # mode's formatter (the Faust worker's) wraps a non-tuple `args` into a 1-tuple: a cut
    # message must leave args as () or `msg % (None,)` breaks.
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s", ("100% " * 1000,), None)
    assert LogSafetyFilter().filter(record)
    text = ExtensionFormatter(fmt="%(message)s").format(record)
    assert text.startswith("100% 100% ")
    assert "chars cut" in text


def test_a_traceback_chained_from_a_validation_error_keeps_frames_not_the_review(
    sink: tuple[logging.Logger, _Collect],
) -> None:
    logger, out = sink
    try:
        try:
            raise _validation_error()
        except Exception as exc:
            raise InvalidRecordError(f"record invalid: {exc}") from exc
    except InvalidRecordError:
        logger.exception("dropping record %s", "e-1")
    text = out.lines[0]
    assert "dog" not in text
    assert "sequel" not in text
    assert "input_value=<redacted>" in text
    assert "Traceback (most recent call last):" in text
    assert "test_a_traceback_chained_from_a_validation_error" in text  # the frame is kept
    assert "The above exception was the direct cause" in text
    assert "ValidationError: 1 validation error for _Review" in text
    assert "InvalidRecordError: record invalid:" in text


def test_a_validation_error_in_the_message_args_is_redacted(
    sink: tuple[logging.Logger, _Collect],
) -> None:
    logger, out = sink
    logger.error("bad record: %r", _validation_error())
    assert "dog" not in out.lines[0]
    assert "sequel" not in out.lines[0]
    assert "rating" in out.lines[0]


def test_scrub_redacts_to_the_last_input_type_on_the_line() -> None:
    line = f"x [type=t, input_value='{SECRET}', input_type=str]\nnext line"
    assert scrub(line, 1000) == "x [type=t, input_value=<redacted>, input_type=str]\nnext line"
    assert scrub("no end input_value='abc", 1000) == "no end input_value=<redacted>"
    assert scrub("plain", 1000) == "plain"


def test_install_is_idempotent() -> None:
    logger = logging.getLogger("test.logsafety.install")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        first = install(logger)
        assert install(logger) is first
        assert handler.filters == [first]
    finally:
        logger.removeHandler(handler)
