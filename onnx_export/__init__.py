"""Build step for the encoder: export, optimise, quantise, validate and manifest ONNX models
(of the packaged weights, or of weights fine-tuned on a dataset by `onnx_export.tune`).

Heavy dependencies (torch, optimum, sentence-transformers: the `export` extra) are imported
lazily inside the stages, so importing this package costs nothing.
"""

from onnx_export.pipeline import ExportOptions, ExportResult, run_export

__all__ = ["ExportOptions", "ExportResult", "run_export"]
