"""Loaders for the MovieLens datasets in shared/data (ml-latest-small and ml-100k).

The caller passes the data folder; nothing here guesses paths from the environment.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DATASETS", "Dataset", "Interaction", "Movie", "TagNote", "load_movielens"]

DATASETS = {"ml-latest-small": "movielens-ml-latest-small", "ml-100k": "movielens-ml-100k"}
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Movie:
    item_id: str
    title: str
    genres: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Interaction:
    user_id: str
    item_id: str
    rating: float
    ts: int


@dataclass(frozen=True, slots=True)
class TagNote:
    user_id: str
    item_id: str
    tag: str
    ts: int


@dataclass(slots=True)
class Dataset:
    name: str
    movies: dict[str, Movie]
    ratings: list[Interaction]
    tags: list[TagNote] = field(default_factory=list)


def load_movielens(data_dir: Path, name: str) -> Dataset:
    """Load `name` (ml-latest-small or ml-100k) from `data_dir` (the shared/data folder)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    folder = data_dir / DATASETS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {folder}")
    if name == "ml-100k":
        return _load_ml100k(folder)
    return _load_latest_small(folder)


def _load_latest_small(folder: Path) -> Dataset:
    with (folder / "movies.csv").open(encoding="utf-8", newline="") as f:
        movies = {
            r["movieId"]: Movie(
                r["movieId"],
                r["title"],
                () if r["genres"] == "(no genres listed)" else tuple(r["genres"].split("|")),
            )
            for r in csv.DictReader(f)
        }
    with (folder / "ratings.csv").open(encoding="utf-8", newline="") as f:
        ratings = [
            Interaction(r["userId"], r["movieId"], float(r["rating"]), int(r["timestamp"]))
            for r in csv.DictReader(f)
        ]
    with (folder / "tags.csv").open(encoding="utf-8", newline="") as f:
        tags = [
            TagNote(r["userId"], r["movieId"], r["tag"], int(r["timestamp"]))
            for r in csv.DictReader(f)
        ]
    return Dataset("ml-latest-small", movies, ratings, tags)


def _load_ml100k(folder: Path) -> Dataset:
    movies: dict[str, Movie] = {}
    # u.item is Latin-1 (accented titles), pipe-separated, 19 genre flags at the end.
    for line in (folder / "u.item").read_text(encoding="latin-1").splitlines():
        if not line.strip():
            continue
        cols = line.split("|")
        flags = cols[5:24]
        genres = tuple(g for g, on in zip(_ML100K_GENRES, flags, strict=True) if on == "1")
        movies[cols[0]] = Movie(cols[0], cols[1], tuple(g for g in genres if g != "unknown"))
    ratings = []
    for line in (folder / "u.data").read_text(encoding="ascii").splitlines():
        user, item, rating, ts = line.split("\t")
        ratings.append(Interaction(user, item, float(rating), int(ts)))
    return Dataset("ml-100k", movies, ratings)
