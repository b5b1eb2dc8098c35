"""`llmrec eval --through-kafka` on a tiny stream: a real broker, a real worker, both scorings."""

from __future__ import annotations

import random

import pytest

from llmrec.data.contract import ContractDataset
from llmrec.encoder.hashing import HashingEncoder
from llmrec.events import Event, ItemRecord
from workers.eval_kafka import KafkaEvalConfig, eval_through_kafka
from workers.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def _dataset() -> ContractDataset:
    rng = random.Random(5)
    genres = ["space", "love", "crime", "war"]
    items = {
        f"i{n}": ItemRecord(item_id=f"i{n}", title=f"a story of {genres[n % 4]} number {n}",
                            categories=[genres[n % 4]])
        for n in range(40)
    }  # fmt: skip
    events = []
    for n in range(400):
        user = f"u{rng.randrange(25)}"
        taste = int(user[1:]) % 4
        item = f"i{rng.randrange(10) * 4 + taste}"  # each user sticks to one genre
        events.append(
            Event(event_id=f"e{n}", type="purchase", user_id=user, item_id=item, ts=1e9 + n)
        )
    return ContractDataset("tiny", items, events)


def test_through_kafka_answers_every_event_and_scores_like_the_offline_replay() -> None:
    config = KafkaEvalConfig(
        workers=1, partitions=2, rate=40.0, backend="hashing", user_fraction=1.0, settle_s=30.0
    )
    doc = eval_through_kafka(_dataset(), HashingEncoder(), Settings(), config)
    assert doc["events_answered"] == doc["events"] == 400
    assert doc["checked"] > 20
    assert doc["paired_checks"] > 10
    # One worker at a slow rate publishes what the offline replay computes, up to the timing of
    # other users' events: the two hit rates on the same checks stay close.
    assert abs(doc["through_kafka_hr_paired"] - doc["offline_published_hr_paired"]) < 0.2
    assert doc["through_kafka_hr_paired"] > 0
