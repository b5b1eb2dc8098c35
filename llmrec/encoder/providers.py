"""Execution-provider choice: GPU providers when present, CPU otherwise, always logged."""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["CPU", "CUDA", "TENSORRT", "choose_providers"]

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
_GPU_FIRST = (TENSORRT, CUDA)


def choose_providers(
    requested: Sequence[str] | None, available: Sequence[str], *, variant: str
) -> list[str]:
    """Return the providers to open a session with, in preference order, CPU always last.

    With `requested` None: TensorRT then CUDA when available (onnxruntime-gpu and a GPU), except
    for the int8 variant, whose dynamic-quantisation ops are CPU kernels. Requested providers
    that are not available are dropped with a warning, so asking for CUDA on a CPU-only box
    falls back to CPU instead of failing.
    """
    if requested is None:
        wanted = [] if variant == "int8" else [p for p in _GPU_FIRST if p in available]
    else:
        wanted = []
        for provider in requested:
            if provider in available:
                wanted.append(provider)
            else:
                log.warning(
                    "execution provider %s requested but not available (available: %s); "
                    "falling back",
                    provider,
                    ", ".join(available),
                )
    chosen = [p for p in wanted if p != CPU] + [CPU]
    log.info("encoder execution providers: %s (variant %s)", ", ".join(chosen), variant)
    return chosen
