"""The one pooling function: mean over the attention mask, then L2 normalisation.

Serving (`llmrec.encoder`) and the export's validation (`onnx_export.validate`) both call it, so
an exported model is judged by exactly the vectors it will serve.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from llmrec.types import Vectors

__all__ = ["mean_pool"]

_EPS = 1e-12


def mean_pool(
    hidden: npt.NDArray[np.floating] | npt.NDArray[np.float16],
    attention_mask: npt.NDArray[np.integer],
) -> Vectors:
    """Average token states where the mask is 1, then scale each row to unit length.

    `hidden` is (batch, seq, dim) `last_hidden_state`; `attention_mask` is (batch, seq). Rows
    whose mask is all zero (never produced by the tokenizer) come back as zero vectors.
    """
    if hidden.ndim != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(
            f"mean_pool expects hidden (b, s, d) and mask (b, s); got {hidden.shape} "
            f"and {attention_mask.shape}"
        )
    states = hidden.astype(np.float32, copy=False)
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (states * mask).sum(axis=1)
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    mean = summed / counts
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    out: Vectors = (mean / np.maximum(norms, _EPS)).astype(np.float32, copy=False)
    return out
