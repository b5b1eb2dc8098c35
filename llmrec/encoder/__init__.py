"""The text encoder runtime: tokenizers + onnxruntime + one pooling function, no torch.

`load_encoder(model_root, variant)` opens the current exported artifact (see
`llmrec.encoder.artifacts` for the layout); `Encoder.encode(texts)` returns unit vectors.
"""

from llmrec.encoder.config import EncoderConfig
from llmrec.encoder.pooling import mean_pool
from llmrec.encoder.runtime import Encoder, load_encoder

__all__ = ["Encoder", "EncoderConfig", "load_encoder", "mean_pool"]
