"""Speech enhancement: audio I/O, Kaldi-style data dirs, mixing, STFT features, metrics, models.

``from latentdiff.se import Enhancer`` loads the model code (and torch) on first use only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["COMPILED_BACKENDS", "STREAM_BACKENDS", "Enhancer"]

COMPILED_BACKENDS = ("onnxruntime", "torchscript")  # compiled whole-block kernels
STREAM_BACKENDS = (*COMPILED_BACKENDS, "eager")  # single-block streaming kernels


def __getattr__(name: str) -> Any:
    if name == "Enhancer":
        from latentdiff.se.enhancer import Enhancer

        return Enhancer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
