"""Parking decisions and the headers that carry a parked event's ticket between hops."""

from __future__ import annotations

from workers.agents.parking import Ticket, Verdict, verdict

RULES = {"retry_s": 1.0, "timeout_s": 60.0}


def test_a_known_item_releases_at_once() -> None:
    what, _ = verdict(known=True, now=100.0, hop_at=100.0, parked_at=100.0, **RULES)
    assert what is Verdict.RELEASE


def test_an_unknown_item_waits_then_requeues_then_expires() -> None:
    what, wait = verdict(known=False, now=100.4, hop_at=100.0, parked_at=90.0, **RULES)
    assert what is Verdict.WAIT
    assert abs(wait - 0.6) < 1e-9
    what, _ = verdict(known=False, now=101.0, hop_at=100.0, parked_at=90.0, **RULES)
    assert what is Verdict.REQUEUE
    what, _ = verdict(known=False, now=150.0, hop_at=149.5, parked_at=90.0, **RULES)
    assert what is Verdict.EXPIRE


def test_ticket_round_trips_through_headers_and_refuses_junk() -> None:
    ticket = Ticket(1700000000.25, "llmrec.events", 3, 12345)
    headers = ticket.headers(hop_at=1700000001.5)
    assert Ticket.from_headers(headers) == (ticket, 1700000001.5)
    assert Ticket.from_headers(dict(headers)) == (ticket, 1700000001.5)
    topic_with_colons = Ticket(1.0, "a:b:c", 0, 1)
    assert Ticket.from_headers(topic_with_colons.headers(2.0)) == (topic_with_colons, 2.0)
    assert Ticket.from_headers(None) is None
    assert Ticket.from_headers([("llmrec-source", b"\xff")]) is None
    assert Ticket.from_headers([("llmrec-parked-at", b"x"), ("llmrec-source", b"0:1:t")]) is None
