"""The encoder on the exported artifacts: parity with PyTorch, batching, inputs, cache."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmrec.encoder import Encoder, EncoderConfig, load_encoder
from llmrec.exceptions import EncoderError
from llmrec.types import TextEncoder

pytestmark = pytest.mark.model

TEXTS = [
    "Heat (1995) Genres: Action, Crime, Thriller.",
    "a",
    "A long, slow film. " * 30,
    "Jumanji (1995) Genres: Adventure, Children, Fantasy.",
    "这部电影非常好看",
    "Love it 😍🔥",
    "Grumpier Old Men (1995) Genres: Comedy, Romance. Tags: sequel, fishing, Walter Matthau.",
]


def test_public_surface(fp32_encoder: Encoder) -> None:
    encoder: TextEncoder = fp32_encoder
    assert encoder.dim == 384
    info = fp32_encoder.info
    assert info["encoder"] == "all-MiniLM-L6-v2"
    assert info["variant"] == "fp32"
    assert info["version"].startswith("r")
    assert fp32_encoder.providers == ["CPUExecutionProvider"]


def test_fp32_matches_pytorch_golden(fp32_encoder: Encoder, golden: dict[str, Any]) -> None:
    want = np.asarray(golden["vectors"], dtype=np.float32)
    got = fp32_encoder.encode(golden["texts"])
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert (got * want).sum(axis=1).min() > 0.9999


def test_int8_close_to_pytorch_golden(int8_encoder: Encoder, golden: dict[str, Any]) -> None:
    want = np.asarray(golden["vectors"], dtype=np.float32)
    got = int8_encoder.encode(golden["texts"])
    assert (got * want).sum(axis=1).min() > 0.98


def test_vectors_are_unit_float32(int8_encoder: Encoder) -> None:
    out = int8_encoder.encode(TEXTS)
    assert out.shape == (len(TEXTS), 384)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batched_equals_one_by_one(fp32_encoder: Encoder) -> None:
    batched = fp32_encoder.encode(TEXTS)
    single = np.vstack([fp32_encoder.encode([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_int8_batching_changes_little(int8_encoder: Encoder) -> None:
    # dynamic quantisation picks one activation scale per batch, so a text's int8 vector
    # moves a little with its batch-mates (cosine ~0.99, measured); fp32 does not
    batched = int8_encoder.encode(TEXTS)
    single = np.vstack([int8_encoder.encode([t]) for t in TEXTS])
    assert (batched * single).sum(axis=1).min() > 0.98


def test_length_bucketing_keeps_input_order(model_root: Path) -> None:
    encoder = load_encoder(model_root, "fp32", EncoderConfig(batch_size=2, cache_size=0))
    texts = TEXTS * 2
    random.Random(7).shuffle(texts)
    out = encoder.encode(texts)
    for text, row in zip(texts, out, strict=True):
        np.testing.assert_allclose(row, encoder.encode([text])[0], atol=1e-5)
    assert encoder.encode(list(reversed(texts)))[0] == pytest.approx(out[-1], abs=1e-5)


@pytest.mark.parametrize("bad", [[""], ["ok", "   "], ["ok", None], "a single string"])
def test_bad_inputs_raise_encoder_error(fp32_encoder: Encoder, bad: Any) -> None:
    with pytest.raises(EncoderError):
        fp32_encoder.encode(bad)


def test_empty_sequence_gives_empty_array(fp32_encoder: Encoder) -> None:
    assert fp32_encoder.encode([]).shape == (0, 384)


def test_unusual_texts_encode(int8_encoder: Encoder, fp32_encoder: Encoder) -> None:
    long_text = ("the quick brown fox jumps over the lazy dog " * 250)[:10_000]
    texts = ["机器学习推荐系统", "🎬🍿😂👍", long_text, "Ｆｕｌｌ　ｗｉｄｔｈ"]
    out = int8_encoder.encode(texts)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # truncation at 256 word pieces: what follows the cut does not matter
    cut = fp32_encoder.encode([long_text, long_text + " zebra"])
    assert (cut[0] @ cut[1]).item() > 0.99999


def test_normalisation_makes_equivalent_texts_equal(fp32_encoder: Encoder) -> None:
    a, b = fp32_encoder.encode(["Toy Story (1995)", "  Ｔｏｙ   Story\n(1995) "])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_cache_serves_repeats(model_root: Path) -> None:
    encoder = load_encoder(model_root, "int8", EncoderConfig(cache_size=2))
    first = encoder.encode(["alpha movie", "beta movie"])
    assert encoder.cache.misses == 2
    again = encoder.encode(["beta  movie", "alpha movie"])  # normalised key hits
    assert encoder.cache.hits == 2
    np.testing.assert_array_equal(again, first[::-1])
    encoder.encode(["gamma movie"])
    assert len(encoder.cache) == 2


def test_cache_disabled(int8_encoder: Encoder) -> None:
    int8_encoder.encode(["delta movie", "delta movie"])
    assert len(int8_encoder.cache) == 0


def test_asking_for_cuda_on_cpu_falls_back(
    model_root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="llmrec.encoder.providers"):
        encoder = load_encoder(
            model_root, "int8", EncoderConfig(providers=("CUDAExecutionProvider",))
        )
    assert encoder.providers == ["CPUExecutionProvider"]
    assert "falling back" in caplog.text
    assert encoder.encode(["still works"]).shape == (1, 384)
