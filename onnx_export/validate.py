"""Stage 4: the quality gate. Compare pooled vectors, raise ModelArtifactError on failure.

Every candidate is encoded by the serving code itself (`llmrec.encoder.Encoder`, which uses
the one `mean_pool`), so the gate judges exactly what will be served.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmrec.data import load_movielens
from llmrec.encoder import Encoder, EncoderConfig
from llmrec.encoder.text import normalize_texts
from llmrec.exceptions import ModelArtifactError
from llmrec.items import item_text
from llmrec.types import Vectors
from onnx_export.deps import require

__all__ = [
    "FIXED_SENTENCES",
    "FP32_MIN_COSINE",
    "INT8_MEAN_COSINE",
    "INT8_TOP10_OVERLAP",
    "check_int8",
    "check_min_cosine",
    "cosines",
    "onnx_vectors",
    "retrieval_texts",
    "top_k_overlap",
    "torch_vectors",
]

log = logging.getLogger(__name__)

FP32_MIN_COSINE = 0.9999
INT8_MEAN_COSINE = 0.99
INT8_TOP10_OVERLAP = 0.9

FIXED_SENTENCES: tuple[str, ...] = (
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "Toy Story (1995) Genres: Adventure, Animation, Children, Comedy, Fantasy.",
    "The new movie is awesome!",
    "I did not like the ending at all; the plot fell apart in the last act.",
    "Heat (1995) Genres: Action, Crime, Thriller. Tags: Al Pacino, heist.",
    "这部电影非常好看，我推荐给所有人。",
    "Great soundtrack 🎵🎬 and a twist I never saw coming 😱",
    "Ünïcödé àccents and full-width ＡＢＣ letters.",
    "a",
    " ".join(["A slow, beautiful film about memory, grief and the sea."] * 40),
    "Space opera with laser swords, a farm boy, a princess and an evil empire.",
)
"""Short, long (truncated at 256 word pieces), multilingual and emoji texts."""


def retrieval_texts(data_dir: Path, limit: int | None = None) -> list[str]:
    """MovieLens ml-latest-small movie texts (title + genres via `item_text`), in file order."""
    movies = load_movielens(data_dir, "ml-latest-small").movies.values()
    texts = [item_text(m.title, m.genres) for m in movies]
    return texts[:limit] if limit else texts


def torch_vectors(source_dir: Path, texts: Sequence[str], max_length: int) -> Vectors:
    """The reference: sentence-transformers on PyTorch fp32, loaded from the local folder."""
    st = require("sentence_transformers")
    model = st.SentenceTransformer(str(source_dir), device="cpu", local_files_only=True)
    model.max_seq_length = max_length
    vectors = model.encode(
        normalize_texts(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def onnx_vectors(
    model_path: Path,
    tokenizer_path: Path,
    texts: Sequence[str],
    *,
    variant: str,
    config: EncoderConfig | None = None,
) -> Vectors:
    """Encode with the serving encoder (cache off) from explicit files."""
    base = config or EncoderConfig()
    cfg = EncoderConfig(
        max_length=base.max_length,
        batch_size=base.batch_size,
        intra_op_threads=base.intra_op_threads,
        providers=base.providers,
        cache_size=0,
    )
    return Encoder.from_files(model_path, tokenizer_path, cfg, variant=variant).encode(texts)


def cosines(a: Vectors, b: Vectors) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Row-wise cosine of two batches of unit vectors."""
    return np.asarray((a * b).sum(axis=1), dtype=np.float32)


def top_k_overlap(ref: Vectors, cand: Vectors, k: int = 10, block: int = 1024) -> float:
    """Mean |top-k(ref) ∩ top-k(cand)| / k, each text querying all others (itself excluded)."""
    total = 0.0
    for start in range(0, len(ref), block):
        stop = min(start + block, len(ref))
        rows = np.arange(start, stop)
        hits = []
        for vecs in (ref, cand):
            sims = vecs[start:stop] @ vecs.T
            sims[np.arange(len(rows)), rows] = -np.inf
            hits.append(np.argpartition(-sims, k, axis=1)[:, :k])
        total += sum(len(set(a) & set(b)) for a, b in zip(hits[0], hits[1], strict=True))
    return total / (len(ref) * k)


def check_min_cosine(
    name: str, ref: Vectors, cand: Vectors, threshold: float = FP32_MIN_COSINE
) -> dict[str, float]:
    """Gate: every text's cosine to the reference must reach `threshold`."""
    cos = cosines(ref, cand)
    figures = {
        "min_cosine": float(cos.min()),
        "mean_cosine": float(cos.mean()),
        "max_abs_diff": float(np.abs(ref - cand).max()),
        "texts": float(len(cos)),
    }
    log.info("%s parity: %s", name, figures)
    if figures["min_cosine"] < threshold:
        raise ModelArtifactError(
            f"quality gate failed for {name}: min cosine {figures['min_cosine']:.6f} < "
            f"{threshold} on {len(cos)} fixed sentences"
        )
    return figures


def check_int8(
    ref: Vectors,
    cand: Vectors,
    *,
    mean_threshold: float = INT8_MEAN_COSINE,
    overlap_threshold: float = INT8_TOP10_OVERLAP,
) -> dict[str, float]:
    """Gate: int8 vs fp32 mean cosine and top-10 neighbour overlap on the retrieval texts."""
    cos = cosines(ref, cand)
    figures = {
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "top10_overlap": top_k_overlap(ref, cand, 10),
        "texts": float(len(cos)),
    }
    log.info("int8 parity: %s", figures)
    failures = []
    if figures["mean_cosine"] < mean_threshold:
        failures.append(f"mean cosine {figures['mean_cosine']:.5f} < {mean_threshold}")
    if figures["top10_overlap"] < overlap_threshold:
        failures.append(f"top-10 overlap {figures['top10_overlap']:.4f} < {overlap_threshold}")
    if failures:
        raise ModelArtifactError(
            f"quality gate failed for int8 vs fp32 on {len(cos)} MovieLens texts: "
            + "; ".join(failures)
        )
    return figures
