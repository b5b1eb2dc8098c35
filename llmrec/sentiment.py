"""Sentiment of an interaction: from the rating when there is one, else zero-shot from text.

Zero-shot means: the same sentence encoder embeds a handful of labelled positive and negative
prototype sentences once; a review's sentiment is how much closer it sits to the positive
prototypes than to the negative ones, squashed into [-1, 1]. No extra model, no training.
"""

from __future__ import annotations

import math

import numpy as np

from llmrec.types import TextEncoder, Vector

__all__ = ["NEGATIVE_PROTOTYPES", "POSITIVE_PROTOTYPES", "SentimentScorer", "rating_sentiment"]

POSITIVE_PROTOTYPES = (
    "I loved it, absolutely wonderful.",
    "Great, highly recommended, one of the best.",
    "A masterpiece, brilliant and moving.",
    "Really enjoyed this, fantastic.",
    "Excellent quality, I would buy it again.",
)
NEGATIVE_PROTOTYPES = (
    "I hated it, absolutely terrible.",
    "Awful, boring, a waste of time and money.",
    "The worst thing I have ever seen.",
    "Really disappointing and bad.",
    "Poor quality, I would never buy it again.",
)


def rating_sentiment(rating: float) -> float:
    """Map a 1-5 rating to [-1, 1] around a neutral 3."""
    return max(-1.0, min(1.0, (rating - 3.0) / 2.0))


class SentimentScorer:
    """Zero-shot text sentiment against encoded prototype sentences (encoded lazily, once)."""

    def __init__(self, encoder: TextEncoder, temperature: float = 0.05) -> None:
        self._encoder = encoder
        self._temperature = temperature
        self._pos: Vector | None = None
        self._neg: Vector | None = None

    def _prototypes(self) -> tuple[Vector, Vector]:
        if self._pos is None or self._neg is None:
            vecs = self._encoder.encode([*POSITIVE_PROTOTYPES, *NEGATIVE_PROTOTYPES])
            n = len(POSITIVE_PROTOTYPES)
            self._pos, self._neg = vecs[:n], vecs[n:]
        return self._pos, self._neg

    def score_vector(self, text_vector: Vector) -> float:
        """Sentiment in [-1, 1] of an already encoded text."""
        pos, neg = self._prototypes()
        gap = float(np.max(pos @ text_vector)) - float(np.max(neg @ text_vector))
        return math.tanh(gap / self._temperature)

    def score(self, text: str) -> float:
        """Sentiment in [-1, 1] of `text`."""
        return self.score_vector(self._encoder.encode([text])[0])
