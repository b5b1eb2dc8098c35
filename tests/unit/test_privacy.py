"""Keyed pseudonyms of user ids."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from llmrec.events import ForgetUser, parse_user_record
from llmrec.exceptions import InvalidRecordError
from llmrec.privacy import pseudonymise
from workers.settings import Settings

KEY = b"k" * 32


def test_pseudonyms_are_stable_keyed_and_opaque() -> None:
    a = pseudonymise("alice@example.com", KEY)
    assert a == pseudonymise("alice@example.com", KEY)
    assert a != pseudonymise("alice@example.com", b"j" * 32)
    assert a != pseudonymise("bob@example.com", KEY)
    assert a.startswith("p_")
    assert len(a) == 34
    assert "alice" not in a


def test_empty_or_short_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        pseudonymise("alice", b"")
    with pytest.raises(ValidationError, match="32 characters"):
        Settings(user_id_key=SecretStr("short"))


def test_forget_records_parse_without_an_item() -> None:
    rec = parse_user_record({"type": "forget", "event_id": "f1", "user_id": "u", "ts": 1.0})
    assert isinstance(rec, ForgetUser)
    with pytest.raises(InvalidRecordError, match="user_id"):
        parse_user_record({"type": "forget", "event_id": "f1", "ts": 1.0})
    # An ordinary event still needs its item.
    with pytest.raises(InvalidRecordError, match="item_id"):
        parse_user_record({"type": "view", "event_id": "e1", "user_id": "u", "ts": 1.0})
