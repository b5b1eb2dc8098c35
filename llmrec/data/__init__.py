"""Dataset loaders and the replay that turns them into llmrec events."""

from llmrec.data.movielens import Dataset, Interaction, Movie, TagNote, load_movielens
from llmrec.data.replay import dataset_events, interleave_users, item_records

__all__ = [
    "Dataset",
    "Interaction",
    "Movie",
    "TagNote",
    "dataset_events",
    "interleave_users",
    "item_records",
    "load_movielens",
]
