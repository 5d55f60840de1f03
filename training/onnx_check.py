"""Does an ONNX model compute what its PyTorch model computes? Random features cut into random chunks, run
through the runtime with its state carried, against the PyTorch model's offline forward.

Used by export (every export is checked) and by onnx_import (weights read back from a graph must reproduce
it); it lives in training so that neither needs the other.
"""

from __future__ import annotations

import numpy as np
import torch

from asr.messages import first_line

from .model import StreamingModel


class OnnxMismatch(ValueError):
    """The graph does not compute what the PyTorch model computes; one line."""


def verify_against_torch(model: StreamingModel, onnx_path: str, tolerance: float | None = 1e-4,
                         seed: int = 0) -> dict:
    """The runtime's log-probs (streamed, flushed with lookahead_steps of zeros) must match PyTorch's offline
    ones; the file must load in the runtime, its state built from its own metadata."""
    from asr.model import ModelError, OnnxAcousticModel

    rng = np.random.default_rng(seed)
    stack, late = model.config.stack, model.lookahead_steps
    batch, steps = 2, 60
    x = rng.standard_normal((batch, steps * stack, model.config.n_mels)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    try:
        runtime = OnnxAcousticModel(onnx_path, device="cpu")
    except ModelError as e:
        raise OnnxMismatch(f"the runtime refuses it ({str(e).removeprefix(onnx_path + ': ')})") from None
    padded = np.concatenate([x, np.zeros((batch, late * stack, x.shape[2]), np.float32)], axis=1)
    state, outs, start = runtime.initial_state(batch), [], 0
    while start < steps + late:
        n = int(rng.integers(1, 12))
        try:
            lp, state = runtime.step(padded[:, start * stack:(start + n) * stack], state)
        except Exception as e:  # onnxruntime's errors have many types
            raise OnnxMismatch(f"it fails on a {n}-step chunk ({first_line(e)})") from None
        outs.append(lp)
        start += n
    got = np.concatenate(outs, axis=1)[:, late:]
    if got.shape != ref.shape:
        raise OnnxMismatch(f"ONNX gives log-probs of shape {list(got.shape)}, PyTorch {list(ref.shape)}")
    diff = float(np.abs(got - ref).max())
    agreement = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    if tolerance is not None and diff > tolerance:
        raise OnnxMismatch(f"ONNX and PyTorch disagree: max |difference| {diff:.2e} > {tolerance:.0e}")
    if agreement < 0.8:
        raise OnnxMismatch(f"ONNX and PyTorch disagree on the best token in {1 - agreement:.0%} of steps")
    return {"max_abs_diff": diff, "argmax_agreement": agreement}
