"""The item text recipe."""

from __future__ import annotations

from llmrec.items import item_text


def test_recipe_orders_title_genres_tags_description() -> None:
    text = item_text("Alien (1979)", ["Horror", "Sci-Fi"], ["space", " "], " A crew meets it. ")
    assert text == "Alien Genres: Horror, Sci-Fi. Tags: space. A crew meets it."


def test_trailing_year_is_dropped_but_a_year_title_survives() -> None:
    assert item_text("Heat (1995)") == "Heat"
    assert item_text("(500) Days of Summer (2009)") == "(500) Days of Summer"
    assert item_text("1984 (1984)") == "1984"
    assert item_text("(1984)") == "(1984)"
