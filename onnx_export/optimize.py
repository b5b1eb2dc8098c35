"""Stage 2: onnxruntime's transformer optimiser (fused attention/layer-norm/GELU) and fp16."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from onnx_export.deps import require

__all__ = ["optimize_graph"]

log = logging.getLogger(__name__)


def optimize_graph(fp32_model: Path, dest: Path, *, fp16: bool = False) -> dict[str, Any]:
    """Fuse BERT subgraphs of `fp32_model` into onnxruntime's contrib ops and save to `dest`.

    `opt_level=0` keeps the saved graph provider-neutral (onnxruntime applies its own level
    at load). With `fp16` the weights and activations become float16 while the inputs and
    outputs stay int64/float32 (`keep_io_types`), for CUDA/TensorRT serving. Returns the fused
    operator counts for the manifest.
    """
    optimizer = require("onnxruntime.transformers.optimizer")
    fusion = require("onnxruntime.transformers.fusion_options")
    config = json.loads((fp32_model.parent / "config.json").read_text(encoding="utf-8"))
    model = optimizer.optimize_model(
        str(fp32_model),
        model_type="bert",
        num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]),
        optimization_options=fusion.FusionOptions("bert"),
        opt_level=0,
        use_gpu=fp16,
    )
    fused = {k: int(v) for k, v in model.get_fused_operator_statistics().items() if v}
    if fp16:
        model.convert_float_to_float16(keep_io_types=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    model.save_model_to_file(str(dest))
    log.info("optimised %s -> %s (fp16=%s): %s", fp32_model.name, dest, fp16, fused)
    return fused
