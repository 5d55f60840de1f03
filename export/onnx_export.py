"""Checkpoint -> self-describing ONNX model, verified against PyTorch on chunked input with state."""

from __future__ import annotations

import json
import logging
import os
import warnings

import torch

from asr.features import FeatureConfig
from asr.metadata import ModelInfo
from training import checkpoint as ckpt
from training.model import StreamingModel
from training.onnx_check import OnnxMismatch, verify_against_torch


class ExportError(ValueError):
    """The checkpoint cannot become a model; one line for users."""


def load_checkpoint(path: str) -> tuple[StreamingModel, dict]:
    """A checkpoint fit to ship: loaded safely, its architecture matching its weights, every number finite."""
    ck = ckpt.load(path)
    ckpt.check_finite(ck, path)
    ck = ckpt.without_aux(ck)  # the auxiliary phone head trains the shared layers only: the file has no trace of it
    return ckpt.build_model(ck, path), ck


def model_info(model: StreamingModel, ck: dict, chunk_steps: int, version: str, accuracy: dict | None) -> ModelInfo:
    """The metadata the model file will carry, checked as the runtime will check it when loading."""
    cfg = model.config
    try:
        info = ModelInfo(
            feature=FeatureConfig.from_dict(ck["feature_config"]), vocab=list(ck["vocab"]), blank_id=ck["blank_id"],
            stack=cfg.stack, chunk_steps=chunk_steps, states=model.states, lookahead_steps=model.lookahead_steps,
            units=ck.get("units", "chars"), version=version,
            training={"data": ck.get("data", {}), "config": ck["train_config"], "parameters": ck.get("parameters"),
                      "epoch": ck.get("epoch"), "averaged_from": ck.get("averaged_from")},
            accuracy=accuracy if accuracy is not None else {"dev_during_training": ck.get("dev")},
        )
        info.validate()
    except (TypeError, ValueError) as e:
        raise ExportError(f"cannot describe the model: {e}") from None
    if len(info.vocab) != cfg.vocab_size:
        raise ExportError(f"the vocabulary has {len(info.vocab)} tokens but the model outputs {cfg.vocab_size}")
    return info


def export(checkpoint: str, output: str, chunk_steps: int = 4, version: str = "1", accuracy: dict | None = None,
           int8: bool = False, verify: bool = True) -> dict:
    model, ck = load_checkpoint(checkpoint)
    try:
        info = model_info(model, ck, chunk_steps, version, accuracy)
    except ExportError as e:
        raise ExportError(f"{checkpoint}: {e}") from None
    # Temporary files are removed whatever happens: a failed export leaves nothing behind.
    tmps = [output + ".tmp.onnx", output + ".int8.tmp.onnx"]
    try:
        return _write(model, info, output, chunk_steps, int8, verify)
    finally:
        for path in tmps:
            if os.path.exists(path):
                os.remove(path)


class _Step(torch.nn.Module):
    """The model's step with its state as tensors in declaration order: the graph's inputs and outputs.
    The model's children are this module's own, so the graph's weights keep the checkpoint's names."""

    def __init__(self, model: StreamingModel):
        super().__init__()
        for name, child in model.named_children():
            self.add_module(name, child)
        self._step = model.step  # a bound method: not registered as a submodule a second time
        self._names = [s.name for s in model.states]

    def forward(self, features, *state):
        log_probs, new = self._step(features, dict(zip(self._names, state)))
        return (log_probs, *(new[name] for name in self._names))


def _write(model: StreamingModel, info: ModelInfo, output: str, chunk_steps: int, int8: bool, verify: bool) -> dict:
    import onnx

    stack, n_mels = model.config.stack, model.config.n_mels
    states = model.states
    example = torch.zeros(1, stack * chunk_steps, n_mels)
    tmp = output + ".tmp.onnx"
    dynamic = {"features": {0: "N", 1: "T"}, "log_probs": {0: "N", 1: "T_out"}}
    for s in states:
        dynamic[s.name] = dynamic[f"{s.name}_out"] = {s.batch_axis: "N"}
    # The TorchScript exporter keeps the time axis dynamic; the dynamo one bakes the LSTM length in.
    with warnings.catch_warnings():
        # The exporter warns about variable batch sizes unless the states are inputs; they are.
        warnings.simplefilter("ignore", UserWarning)
        # In eval mode: the exporter restores the mode it found, down to the model's own (shared) children.
        torch.onnx.export(_Step(model).eval(), (example, *model.initial_state(1).values()), tmp, dynamo=False,
                          opset_version=17, input_names=["features", *(s.name for s in states)],
                          output_names=["log_probs", *(f"{s.name}_out" for s in states)], dynamic_axes=dynamic)
    proto = onnx.load(tmp)
    for key, value in info.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, tmp)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fp32 = tmp
        tmp = output + ".int8.tmp.onnx"
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # onnxruntime's pre-processing advice (on the root logger) is noise here
        try:
            quantize_dynamic(fp32, tmp, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        os.remove(fp32)
    report = {}
    if verify:
        # int8 cannot match to 1e-4: it must agree on the best token; its accuracy is checked on real speech
        # with `asr export --int8 --check MANIFEST`.
        try:
            report = verify_against_torch(model, tmp, tolerance=None if int8 else 1e-4)
        except OnnxMismatch as e:
            raise ExportError(str(e)) from None
    os.replace(tmp, output)
    return {"output": output, "bytes": os.path.getsize(output), **report}


if __name__ == "__main__":  # pragma: no cover - convenience for recipes
    import sys

    print(json.dumps(export(sys.argv[1], sys.argv[2])))
