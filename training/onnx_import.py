"""Exported ONNX model -> training checkpoint, so a shipped model can be fine-tuned without its run folder."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from asr.metadata import ModelInfo
from asr.messages import first_line

from .model import ModelConfig, StreamingModel, build_model
from .onnx_check import OnnxMismatch, verify_against_torch

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

    try:
        proto = onnx.load(path)
    except Exception as e:  # protobuf's DecodeError and friends: whatever it is, it is not a model
        raise InitError(f"{path}: not an ONNX model ({type(e).__name__})") from None
    try:
        info = ModelInfo.from_props({p.key: p.value for p in proto.metadata_props})
    except (ValueError, KeyError) as e:
        raise InitError(f"{path}: {e}") from None
    try:
        model = build_model(ModelConfig.from_dict(info.training["config"]["model"]))
    except (KeyError, TypeError, ValueError):
        raise InitError(f"{path}: its metadata holds no usable training configuration (asr.training)") from None
    _check_declaration(path, info, model)
    state = _weights(path, proto, model)
    training = info.training
    _check_against_onnx(path, model, state)
    return {
        "model": state,
        "train_config": training["config"],
        "feature_config": info.feature.to_dict(),
        "vocab": info.vocab,
        "blank_id": info.blank_id,
        "units": info.units,
        "epoch": training.get("epoch"),
        "data": training.get("data", {}),
    }


def _check_declaration(path: str, info: ModelInfo, model: StreamingModel) -> None:
    """The state and lookahead the file declares (or, for a file older than the declaration, what the runtime
    derives for it) must be those of the model its configuration builds."""
    pairs = {"asr.states": ([s.to_dict() for s in info.states], [s.to_dict() for s in model.states]),
             "asr.lookahead_steps": (info.lookahead_steps, model.lookahead_steps)}
    for key, (declared, built) in pairs.items():
        if declared != built:
            raise InitError(f"{path}: metadata {key} is {json.dumps(declared)}, but its configuration builds a "
                            f"model with {json.dumps(built)}")


def _weights(path: str, proto, model: StreamingModel) -> dict:
    """The model's parameters found in the graph. The exporter keeps a parameter's name where the graph uses
    it as it is (biases, convolutions) but rewrites the LSTM's (ONNX gate order, one bias per layer) and the
    output layer's weight (transposed for MatMul)."""
    from onnx import numpy_helper

    weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    wanted = model.state_dict()
    state = {name: torch.from_numpy(weights[name].copy()) for name, t in wanted.items()
             if name in weights and weights[name].shape == tuple(t.shape)}
    h = model.config.hidden
    lstms = [n for n in proto.graph.node if n.op_type == "LSTM"]
    for k, node in enumerate(lstms):  # graph order is layer order: each layer consumes the previous one
        if not all(name in weights for name in node.input[1:4]):
            break  # computed weights: not a graph `asr export` wrote; refused below
        w, r, b = (weights[name][0] for name in node.input[1:4])
        state[f"lstm.weight_ih_l{k}"] = _torch_gates(w, h)
        state[f"lstm.weight_hh_l{k}"] = _torch_gates(r, h)
        state[f"lstm.bias_ih_l{k}"] = _torch_gates(b[:4 * h], h)
        state[f"lstm.bias_hh_l{k}"] = _torch_gates(b[4 * h:], h)
    matmuls = [n for n in proto.graph.node if n.op_type == "MatMul" and n.input[1] in weights]
    if len(matmuls) == 1:
        state["out.weight"] = torch.from_numpy(np.ascontiguousarray(weights[matmuls[0].input[1]].T))
    if set(state) != set(wanted):
        raise InitError(f"{path}: not an fp32 model exported by `asr export` (int8 models cannot be imported)")
    return state


def _check_against_onnx(path: str, model: StreamingModel, state: dict) -> None:
    """The rebuilt PyTorch model must compute what the ONNX graph computes, or the mapping is wrong."""
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InitError(f"{path}: weights read back do not fit the model ({first_line(e)})") from None
    model.eval()
    try:
        verify_against_torch(model, path)
    except OnnxMismatch as e:
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
