"""Converters: Amazon 2018 (HTML, fallbacks, merging, dedup, filter), MovieLens, built-ins, CLI."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from llmrec.data.amazon2018 import convert_amazon2018
from llmrec.data.builtin import MAGAZINE_DIR, builtin_conversion, builtin_dataset
from llmrec.data.contract import load_contract
from llmrec.data.convert import convert_movielens
from llmrec.data.markup import shorten, strip_html
from llmrec.exceptions import DatasetError
from workers.cli import app

SPAN = '<span class="a-size-medium a-color-secondary"'
AUTO_RENEW = (
    '<a href="/gp/help/customer/display.html?ie=UTF8&nodeId=1" target="_blank">Learn more</a>'
    " about auto-renewal subscriptions on Amazon.com"
)
META: list[dict[str, Any]] = [
    {"asin": "M1", "title": "Disney &amp; Me <b>Kids</b>", "brand": "Disney", "category": []},
    {
        "asin": "M2",
        "title": SPAN,
        "brand": "Hearst Magazines",
        "description": ["<p>Good Housekeeping   helps you.</p> It has recipes.", AUTO_RENEW],
        "category": ["Magazine Subscriptions", "Home &amp; Garden", "", "Home & Garden"],
    },
    {"asin": "M3", "title": ' Magazines" />', "brand": "", "description": []},
    {"asin": "M1", "title": "A later duplicate", "brand": "Other"},
    {"asin": "M4", "title": "Never reviewed", "brand": "X"},
]
REVIEWS: list[dict[str, Any]] = [
    {"reviewerID": "U1", "asin": "M1", "overall": 5.0, "unixReviewTime": 300,
     "summary": "Great", "reviewText": "Lovely d&eacute;cor ideas."},
    {"reviewerID": "U1", "asin": "M2", "overall": 2.0, "unixReviewTime": 100,
     "summary": "Meh!", "reviewText": "Too many ads."},
    {"reviewerID": "U2", "asin": "M2", "overall": 4.0, "unixReviewTime": 200},
    {"reviewerID": "U1", "asin": "M1", "overall": 5.0, "unixReviewTime": 300,
     "summary": "Great", "reviewText": "Lovely d&eacute;cor ideas."},
    {"reviewerID": "U3", "asin": "M9", "overall": 9.0, "unixReviewTime": 50, "summary": "x"},
]  # fmt: skip
RATINGS = [
    "M2,U1,2.0,100",  # U1 reviewed M2: superseded by the review
    "M3,U2,3.0,150",  # ratings-only -> rating event c2
    "M3,U2,3.0,150",  # exact repeat of line 2
    "M5,U3,1.0,400",  # no metadata -> titled by asin
    "M5,U4,7.0,10",  # rating out of range -> line error
]


def _jsonl_gz(path: Path, docs: list[dict[str, Any]], junk: str | None = None) -> Path:
    with gzip.open(path, "wb") as f:
        for doc in docs:
            f.write(orjson.dumps(doc) + b"\n")
        if junk is not None:
            f.write(junk.encode() + b"\n")
    return path


@pytest.fixture
def amazon(tmp_path: Path) -> dict[str, Path]:
    return {
        "reviews": _jsonl_gz(tmp_path / "reviews.json.gz", REVIEWS, junk="{broken"),
        "meta": _jsonl_gz(tmp_path / "meta.json.gz", META),
        "ratings": _write(tmp_path / "ratings.csv", RATINGS),
    }


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _by_id(records: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in records}


def test_html_is_stripped_and_markup_titles_fall_back(amazon: dict[str, Path]) -> None:
    conv = convert_amazon2018(reviews=amazon["reviews"], meta=amazon["meta"])
    items = _by_id(conv.items, "item_id")

    assert items["M1"]["title"] == "Disney & Me Kids"  # the first M1 line wins
    assert items["M1"]["attributes"] == {"brand": "Disney"}
    assert items["M2"]["title"] == "Hearst Magazines: Good Housekeeping helps you. It has recipes."
    assert items["M2"]["description"] == "Good Housekeeping helps you. It has recipes."
    assert items["M2"]["categories"] == ["Magazine Subscriptions", "Home & Garden"]
    assert "M3" not in items  # only reviewed items here (M3 is rated in the CSV only)
    assert conv.counts["meta_duplicates"] == 1
    assert conv.counts["meta_markup_titles"] == 2  # M2's span and M3's attribute tail
    assert conv.counts["meta_items_unused"] == 2  # M3, M4


def test_a_title_with_nothing_to_fall_back_on_is_the_asin(tmp_path: Path) -> None:
    meta = _jsonl_gz(tmp_path / "m.json.gz", [{"asin": "Z", "title": SPAN, "brand": ""}])
    ratings = _write(tmp_path / "r.csv", ["Z,U,4,1"])
    conv = convert_amazon2018(ratings=ratings, meta=meta)
    assert conv.items == [{"item_id": "Z", "title": "Z", "categories": [], "ts": 0}]


def test_reviews_become_review_events_with_rating_and_text(amazon: dict[str, Path]) -> None:
    conv = convert_amazon2018(reviews=amazon["reviews"], meta=amazon["meta"])
    events = _by_id(conv.events, "event_id")

    assert events["r1"] == {
        "event_id": "r1", "user_id": "U1", "item_id": "M1", "ts": 300,
        "type": "review", "rating": 5.0, "text": "Great. Lovely décor ideas.",
    }  # fmt: skip
    assert events["r2"]["text"] == "Meh! Too many ads."
    assert events["r3"] == {
        "event_id": "r3", "user_id": "U2", "item_id": "M2", "ts": 200,
        "type": "rating", "rating": 4.0,
    }  # fmt: skip  # no text at all: a rating event
    assert "r4" not in events  # an exact repeat of r1
    assert conv.counts["review_duplicates"] == 1
    assert [e["event_id"] for e in conv.events] == ["r2", "r3", "r1"]  # by time
    assert [(e.line, e.reason) for e in conv.errors] == [
        (5, "overall must be 1-5, got 9.0"),
        (6, conv.errors[1].reason),
    ]
    assert conv.errors[1].reason.startswith("not valid JSON")
    assert conv.dataset("t").errors == conv.errors  # the records themselves are valid


def test_ratings_merge_with_reviews(amazon: dict[str, Path]) -> None:
    conv = convert_amazon2018(reviews=amazon["reviews"], ratings=amazon["ratings"])
    events = _by_id(conv.events, "event_id")

    assert events["c2"] == {
        "event_id": "c2", "user_id": "U2", "item_id": "M3", "ts": 150,
        "type": "rating", "rating": 3.0,
    }  # fmt: skip
    assert "c1" not in events  # U1 reviewed M2: only the review stays
    assert events["r2"]["type"] == "review"
    assert "c3" not in events  # exact repeat
    assert sorted(events) == ["c2", "c4", "r1", "r2", "r3"]
    assert conv.counts["ratings_with_review"] == 1
    assert conv.counts["rating_duplicates"] == 1
    assert conv.counts["rating_rows"] == 4
    assert [(e.source, e.line) for e in conv.errors] == [
        (str(amazon["reviews"]), 5),
        (str(amazon["reviews"]), 6),
        (str(amazon["ratings"]), 5),
    ]
    # no metadata given: every item is titled by its asin
    assert {i["item_id"]: i["title"] for i in conv.items} == {
        "M1": "M1", "M2": "M2", "M3": "M3", "M5": "M5",
    }  # fmt: skip
    assert conv.counts["items_without_meta"] == 4


def test_min_user_items_counts_distinct_items(tmp_path: Path) -> None:
    ratings = _write(
        tmp_path / "r.csv",
        ["A,u1,5,1", "A,u1,4,2", "A,u2,5,3", "B,u2,5,4", "B,u3,3,5", "C,u3,3,6", "D,u3,2,7"],
    )
    conv = convert_amazon2018(ratings=ratings, min_user_items=2)

    assert sorted({e["user_id"] for e in conv.events}) == ["u2", "u3"]  # u1: two rows, one item
    assert conv.counts["users_dropped"] == 1
    assert conv.counts["events_dropped"] == 2
    assert [i["item_id"] for i in conv.items] == ["A", "B", "C", "D"]
    assert convert_amazon2018(ratings=ratings, min_user_items=3).counts["users"] == 1


def test_all_meta_items_keeps_the_cold_catalogue(amazon: dict[str, Path]) -> None:
    conv = convert_amazon2018(reviews=amazon["reviews"], meta=amazon["meta"], all_meta_items=True)
    items = _by_id(conv.items, "item_id")
    assert list(items) == ["M1", "M2", "M3", "M4"]
    assert items["M3"]["title"] == "M3"  # markup title, no brand, no description


def test_bad_inputs_raise_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="reviews file, a ratings file"):
        convert_amazon2018(meta=tmp_path / "m.json.gz")
    with pytest.raises(DatasetError, match="file not found"):
        convert_amazon2018(ratings=tmp_path / "none.csv")
    only_bad = _write(tmp_path / "bad.csv", ["A,u,nope,1", "B,u"])
    with pytest.raises(DatasetError, match=r"no valid record \(2 invalid\)"):
        convert_amazon2018(ratings=only_bad)


def test_markup_helpers() -> None:
    assert strip_html('<hr /> <div class="x">A &amp; B</div>\n\t<strong class="') == "A & B"
    assert strip_html(' Magazines" />') == ""
    assert shorten("One. Two three.", 10) == "One."
    assert shorten("word " * 30, 20) == "word word word word…"


ML_MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children
2,"Heat, The (1995)",Action|Crime
3,Nothing Listed (2000),(no genres listed)
"""
ML_RATINGS = """userId,movieId,rating,timestamp
1,1,5.0,100
1,2,3.5,90
2,1,2.0,100
2,3,0.5,80
"""
ML_TAGS = """userId,movieId,tag,timestamp
2,2,slow burn,95
"""


@pytest.fixture
def movielens_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "movielens-ml-latest-small"
    folder.mkdir()
    (folder / "movies.csv").write_text(ML_MOVIES, encoding="utf-8")
    (folder / "ratings.csv").write_text(ML_RATINGS, encoding="utf-8")
    (folder / "tags.csv").write_text(ML_TAGS, encoding="utf-8")
    return tmp_path


def test_movielens_converter_uses_the_replay_mapping(movielens_dir: Path) -> None:
    conv = convert_movielens(movielens_dir, "ml-latest-small")

    assert conv.items[1] == {
        "item_id": "2", "title": "Heat, The (1995)", "categories": ["Action", "Crime"], "ts": 0,
    }  # fmt: skip
    assert conv.items[2]["categories"] == []
    assert [(e["event_id"], e["type"], e["ts"]) for e in conv.events] == [
        ("ml-latest-small-r0", "dislike", 80),
        ("ml-latest-small-r1", "rating", 90),
        ("ml-latest-small-t0", "review", 95),
        ("ml-latest-small-r2", "purchase", 100),
        ("ml-latest-small-r3", "view", 100),
    ]
    assert conv.events[0]["rating"] == 1.0  # 0.5 is clamped into the contract's 1-5
    assert conv.events[2]["text"] == "slow burn"
    assert conv.counts == {"movies": 3, "ratings": 4, "tags": 1, "users": 2}

    ds = builtin_dataset(movielens_dir, "ml-latest-small")
    assert (len(ds.items), len(ds.events), ds.errors) == (3, 5, [])
    with pytest.raises(DatasetError, match="not found"):
        convert_movielens(movielens_dir, "ml-100k")


def test_builtin_names_and_folders(tmp_path: Path, amazon: dict[str, Path]) -> None:
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        builtin_dataset(tmp_path, "nope")
    with pytest.raises(DatasetError, match="folder not found"):
        builtin_dataset(tmp_path, "magazine-5core")
    folder = tmp_path / MAGAZINE_DIR
    folder.mkdir()
    amazon["meta"].rename(folder / "meta_Magazine_Subscriptions.json.gz")
    _write(folder / "Magazine_Subscriptions.csv", [f"I{n},u1,5,{n}" for n in range(3)] + RATINGS)

    conv = builtin_conversion(tmp_path, "magazine-ratings")
    assert {e["user_id"] for e in conv.events} == {"u1"}  # only u1 rated >= 3 distinct items
    assert len(builtin_dataset(tmp_path, "magazine-ratings").events) == 3


def test_cli_writes_contract_files(amazon: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["data", "convert", "amazon2018", "--reviews", str(amazon["reviews"])]
    args += ["--meta", str(amazon["meta"]), "--ratings", str(amazon["ratings"]), "--out", str(out)]

    result = CliRunner().invoke(app, args)

    assert result.exit_code == 0, result.output
    assert "wrote 4 items" in result.output  # not M9: its only review was invalid
    assert "3 line errors" in result.output
    ds = load_contract(out / "items.jsonl.gz", out / "events.jsonl.gz")
    assert ds.errors == []
    assert sorted(ds.items) == ["M1", "M2", "M3", "M5"]
    assert [e.event_id for e in ds.events] == ["r2", "c2", "r3", "r1", "c4"]


@pytest.mark.slow
def test_real_magazine_files(data_dir: Path) -> None:
    folder = data_dir / MAGAZINE_DIR
    if not folder.is_dir():
        pytest.fail(f"Amazon Magazine folder missing: {folder}")
    five = builtin_conversion(data_dir, "magazine-5core")
    c = five.counts
    assert (c["items"], c["events"], c["users"], c["line_errors"]) == (157, 2333, 348, 0)
    assert (c["review_duplicates"], c["meta_duplicates"], c["meta_items"]) == (42, 1065, 2320)
    assert c["items_without_meta"] == 6
    assert not any("<" in i["title"] for i in five.items)
    ratings = builtin_conversion(data_dir, "magazine-ratings").counts
    assert (ratings["items"], ratings["events"], ratings["users"]) == (1299, 11742, 2825)
    assert (ratings["rating_rows"], ratings["rating_duplicates"]) == (89689, 1221)
