"""Prequential scoring of published lists, and the checks Protocol B shares with it."""

from __future__ import annotations

from llmrec.eval.protocol_b import check_positions
from llmrec.eval.published import PublishedList, score_published
from llmrec.events import Event


def _ev(n: int, user: str, item: str) -> Event:
    return Event(event_id=f"e{n}", type="view", user_id=user, item_id=item, ts=1000.0 + n)


STREAM = [
    _ev(0, "a", "i1"),
    _ev(1, "b", "i2"),
    _ev(2, "a", "i3"),  # checked: a's list after e0 holds i3 -> hit
    _ev(3, "a", "i4"),  # checked: folded with e2 into one list, so the list before is after e0
    _ev(4, "b", "i5"),  # checked: b's list after e1 lacks i5 -> miss
    _ev(5, "c", "i6"),  # checked: c never had a list -> no list
]


def test_the_list_published_before_an_event_is_the_one_scored() -> None:
    lists = [
        PublishedList("a", ["e0"], ["i3", "i4"]),
        PublishedList("b", ["e1"], ["i9"]),
        PublishedList("a", ["e2", "e3"], ["i7"]),  # computed after e3: never scores e3
        PublishedList("a", ["e0"], ["i3", "i4"]),  # a redelivered duplicate changes nothing
        PublishedList("zz", ["unknown-id"], ["i1"]),
    ]
    score = score_published(STREAM, [2, 3, 4, 5], lists)
    assert score.checked == 4
    assert score.no_list == 1
    assert score.hit_at == {2: True, 3: True, 4: False}
    assert score.hits == 2
    assert abs(score.hr - 2 / 3) < 1e-12


def test_a_list_that_covers_the_checked_event_itself_does_not_count() -> None:
    score = score_published(STREAM, [2], [PublishedList("a", ["e0", "e2"], ["i3"])])
    assert score.no_list == 1
    assert score.hr == 0.0


def test_checks_are_first_engagements_after_warmup_of_sampled_users() -> None:
    stream = [_ev(n, f"u{n % 3}", f"i{n % 4}") for n in range(40)]
    checks = check_positions(stream, user_fraction=1.0, warmup_fraction=0.25, max_checks=100)
    assert checks
    assert min(checks) >= 10
    pairs = [(stream[n].user_id, stream[n].item_id) for n in checks]
    assert len(pairs) == len(set(pairs))
    seen_before = {(e.user_id, e.item_id) for e in stream[:10]}
    assert not set(pairs) & seen_before
    first = check_positions(stream, user_fraction=1.0, warmup_fraction=0.25, max_checks=1)
    assert first == checks[:1]
    assert check_positions(stream, seed=1) == check_positions(stream, seed=1)
