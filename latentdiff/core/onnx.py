"""The onnxruntime session of compiled per-call kernels (streaming blocks, planner proposals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime


def single_thread_session(
    model: bytes, profile_prefix: str | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session on one thread, denormals flushed to zero (silence stays fast);
    with ``profile_prefix`` it records onnxruntime's per-node profile (``end_profiling``)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
