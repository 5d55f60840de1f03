"""Exported ONNX model -> training checkpoint, so a shipped model can be fine-tuned without its run folder."""

from __future__ import annotations

import os

import numpy as np
import torch

from asr.metadata import ModelInfo

# ONNX orders an LSTM's four gates input, output, forget, cell; PyTorch input, forget, cell, output.
_TORCH_FROM_ONNX_GATES = [0, 2, 3, 1]


class InitError(ValueError):
    """The file given as `init` cannot start a training run."""


def _torch_gates(w: np.ndarray, hidden: int) -> torch.Tensor:
    gates = w.reshape(4, hidden, *w.shape[1:])
    return torch.from_numpy(np.ascontiguousarray(gates[_TORCH_FROM_ONNX_GATES].reshape(w.shape)))


def checkpoint_from_onnx(path: str) -> dict:
    """A dict shaped like a training checkpoint (weights, configs, vocabulary) read from an fp32 export."""
    import onnx
    from onnx import numpy_helper

    try:
        proto = onnx.load(path)
    except Exception as e:  # protobuf's DecodeError and friends: whatever it is, it is not a model
        raise InitError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    try:
        info = ModelInfo.from_props({p.key: p.value for p in proto.metadata_props})
    except (ValueError, KeyError) as e:
        raise InitError(f"{path}: {e}") from None
    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    matmuls = [n for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    if len(lstms) != info.layers or len(matmuls) != 1 or "out.bias" not in weights:
        raise InitError(f"{path}: not an fp32 model exported by `asr export` (int8 models cannot be imported)")
    h = info.hidden
    state = {}
    for k, node in enumerate(lstms):  # graph order is layer order: each layer consumes the previous one
        w, r, b = (weights[name][0] for name in node.input[1:4])
        state[f"lstm.weight_ih_l{k}"] = _torch_gates(w, h)
        state[f"lstm.weight_hh_l{k}"] = _torch_gates(r, h)
        state[f"lstm.bias_ih_l{k}"] = _torch_gates(b[:4 * h], h)
        state[f"lstm.bias_hh_l{k}"] = _torch_gates(b[4 * h:], h)
    state["out.weight"] = torch.from_numpy(np.ascontiguousarray(weights[matmuls[0].input[1]].T))
    state["out.bias"] = torch.from_numpy(weights["out.bias"].copy())
    training = info.training
    _check_against_onnx(path, state, training["config"]["model"])
    return {
        "model": state,
        "train_config": training["config"],
        "feature_config": info.feature.to_dict(),
        "vocab": info.vocab,
        "blank_id": info.blank_id,
        "epoch": training.get("epoch"),
        "data": training.get("data", {}),
    }


def _check_against_onnx(path: str, state: dict, model_config: dict) -> None:
    """The rebuilt PyTorch model must compute what the ONNX graph computes, or the mapping is wrong."""
    from export.onnx_export import ExportError, verify_against_torch

    from .model import AcousticModel, ModelConfig

    model = AcousticModel(ModelConfig.from_dict(model_config))
    model.load_state_dict(state)
    model.eval()
    try:
        verify_against_torch(model, path)
    except ExportError as e:
        raise InitError(f"{path}: weights read back do not reproduce the model ({e})") from None


def load_init(path: str) -> dict:
    """Weights to start training from: a training checkpoint (.pt) or an exported model (.onnx)."""
    if not os.path.isfile(path):
        raise InitError(f"{path}: no such file")
    if path.endswith(".onnx"):
        return checkpoint_from_onnx(path)
    from .checkpoint import CheckpointError, build_model, check_finite, load

    try:
        ck = load(path)
        check_finite(ck, path)  # its statistics become this run's: NaN ones would train on NaN inputs
        build_model(ck, path)  # its configuration must describe its weights
    except CheckpointError as e:
        raise InitError(str(e)) from None
    return ck
