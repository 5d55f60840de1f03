"""Checkpoint -> self-describing ONNX model, verified against PyTorch on chunked input with state."""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import torch

from asr.features import FeatureConfig
from asr.metadata import ModelInfo
from training import checkpoint as ckpt
from training.model import AcousticModel


class ExportError(ValueError):
    """The checkpoint cannot become a model; one line for users."""


def load_checkpoint(path: str) -> tuple[AcousticModel, dict]:
    """A checkpoint fit to ship: loaded safely, its architecture matching its weights, every number finite."""
    ck = ckpt.load(path)
    ckpt.check_finite(ck, path)
    return ckpt.build_model(ck, path), ck


def model_info(model: AcousticModel, ck: dict, chunk_steps: int, version: str, accuracy: dict | None) -> ModelInfo:
    """The metadata the model file will carry, checked as the runtime will check it when loading."""
    cfg = model.config
    try:
        info = ModelInfo(
            feature=FeatureConfig.from_dict(ck["feature_config"]), vocab=list(ck["vocab"]), blank_id=ck["blank_id"],
            stack=cfg.stack, chunk_steps=chunk_steps, layers=cfg.layers, hidden=cfg.hidden,
            state_size=model.output_size, version=version,
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


def _write(model: AcousticModel, info: ModelInfo, output: str, chunk_steps: int, int8: bool, verify: bool) -> dict:
    import onnx

    stack, n_mels = model.config.stack, model.config.n_mels
    h0, c0 = model.initial_state(1)
    example = torch.zeros(1, stack * chunk_steps, n_mels)
    tmp = output + ".tmp.onnx"
    # The TorchScript exporter keeps the time axis dynamic; the dynamo one bakes the LSTM length in.
    with warnings.catch_warnings():
        # The exporter warns about variable batch sizes unless h0/c0 are inputs; they are.
        warnings.simplefilter("ignore", UserWarning)
        torch.onnx.export(model, (example, h0, c0), tmp, dynamo=False, opset_version=17,
                          input_names=["features", "h", "c"], output_names=["log_probs", "h_out", "c_out"],
                          dynamic_axes={"features": {0: "N", 1: "T"}, "h": {1: "N"}, "c": {1: "N"},
                                        "log_probs": {0: "N", 1: "T_out"}, "h_out": {1: "N"}, "c_out": {1: "N"}})
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
    # int8 cannot match to 1e-4: it must agree on the best token; its accuracy is checked on real speech
    # with `asr export --int8 --check MANIFEST`.
    report = verify_against_torch(model, tmp, tolerance=None if int8 else 1e-4) if verify else {}
    os.replace(tmp, output)
    return {"output": output, "bytes": os.path.getsize(output), **report}


def verify_against_torch(model: AcousticModel, onnx_path: str, tolerance: float | None = 1e-4, seed: int = 0) -> dict:
    """Random features cut into random chunks, state carried: ONNX log-probs must match PyTorch's."""
    from asr.model import OnnxAcousticModel

    rng = np.random.default_rng(seed)
    stack = model.config.stack
    batch, steps = 2, 60
    x = rng.standard_normal((batch, steps * stack, model.config.n_mels)).astype(np.float32)
    with torch.no_grad():
        h, c = model.initial_state(batch)
        ref, _, _ = model(torch.from_numpy(x), h, c)
    ort_model = OnnxAcousticModel(onnx_path, device="cpu")
    h, c = ort_model.initial_state(batch)
    outs, start = [], 0
    while start < steps:
        n = int(rng.integers(1, 12))
        lp, h, c = ort_model(x[:, start * stack : (start + n) * stack], h, c)
        outs.append(lp)
        start += n
    got, ref = np.concatenate(outs, axis=1), ref.numpy()
    diff = float(np.abs(got - ref).max())
    agreement = float(np.mean(got.argmax(-1) == ref.argmax(-1)))
    if tolerance is not None and diff > tolerance:
        raise ExportError(f"ONNX and PyTorch disagree: max |difference| {diff:.2e} > {tolerance:.0e}")
    if agreement < 0.8:
        raise ExportError(f"ONNX and PyTorch disagree on the best token in {1 - agreement:.0%} of steps")
    return {"max_abs_diff": diff, "argmax_agreement": agreement}


if __name__ == "__main__":  # pragma: no cover - convenience for recipes
    import sys

    print(json.dumps(export(sys.argv[1], sys.argv[2])))
