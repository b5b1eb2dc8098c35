"""Encoder pieces that need no model: pooling, text normalisation, cache, config, providers."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from llmrec.encoder import EncoderConfig, load_encoder, mean_pool
from llmrec.encoder.cache import VectorCache
from llmrec.encoder.providers import CPU, CUDA, TENSORRT, choose_providers
from llmrec.encoder.text import normalize_text, normalize_texts
from llmrec.exceptions import EncoderError, ModelArtifactError


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    out = mean_pool(hidden, mask)
    expected = np.array([2.0, 2.0]) / np.linalg.norm([2.0, 2.0])
    np.testing.assert_allclose(out[0], expected, rtol=1e-6)
    assert out.dtype == np.float32


def test_mean_pool_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="mean_pool expects"):
        mean_pool(np.zeros((2, 3, 4), dtype=np.float32), np.ones((2, 4), dtype=np.int64))


def test_normalize_text_nfkc_and_whitespace() -> None:
    assert normalize_text("  Ｔｏｙ\u3000Story\n\t(1995)  ") == "Toy Story (1995)"


@pytest.mark.parametrize("bad", ["", "   ", "\n\t\u3000", None, 3, b"bytes"])
def test_normalize_text_rejects_blank_and_non_str(bad: object) -> None:
    with pytest.raises(EncoderError):
        normalize_text(bad)


def test_normalize_texts_names_the_bad_position() -> None:
    with pytest.raises(EncoderError, match="text #1"):
        normalize_texts(["fine", " "])
    with pytest.raises(EncoderError, match="not a single str"):
        normalize_texts("one string")


def test_cache_is_lru_and_zero_disables() -> None:
    cache = VectorCache(2)
    a, b, c = (np.full(3, i, dtype=np.float32) for i in range(3))
    cache.put("a", a)
    cache.put("b", b)
    assert cache.get("a") is not None  # a is now most recent
    cache.put("c", c)
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert len(cache) == 2
    off = VectorCache(0)
    off.put("a", a)
    assert off.get("a") is None
    assert len(off) == 0


def test_cache_entries_are_read_only_copies() -> None:
    cache = VectorCache(1)
    vec = np.ones(3, dtype=np.float32)
    cache.put("k", vec)
    vec[0] = 5
    stored = cache.get("k")
    assert stored is not None
    assert stored[0] == 1
    with pytest.raises(ValueError, match="read-only"):
        stored[0] = 2


@pytest.mark.parametrize(
    "kwargs",
    [{"max_length": 4}, {"max_length": 600}, {"batch_size": 0}, {"cache_size": -1},
     {"intra_op_threads": 0}],
)  # fmt: skip
def test_config_rejects_bad_values(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        EncoderConfig(**kwargs)  # type: ignore[arg-type]


def test_requested_gpu_falls_back_to_cpu_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="llmrec.encoder.providers"):
        chosen = choose_providers((CUDA,), [CPU], variant="fp32")
    assert chosen == [CPU]
    assert "CUDAExecutionProvider requested but not available" in caplog.text
    assert "encoder execution providers: CPUExecutionProvider" in caplog.text


def test_auto_providers_prefer_gpu_except_for_int8() -> None:
    available = [TENSORRT, CUDA, CPU]
    assert choose_providers(None, available, variant="fp16") == [TENSORRT, CUDA, CPU]
    assert choose_providers(None, available, variant="int8") == [CPU]
    assert choose_providers(None, [CPU], variant="fp16") == [CPU]


def test_load_encoder_without_artifacts_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="llmrec export-model"):
        load_encoder(tmp_path, "int8")
    with pytest.raises(ModelArtifactError, match="unknown encoder variant"):
        load_encoder(tmp_path, "int4")
