"""Training checkpoints on disk: written atomically, read without ever running code from the file.

A checkpoint holds only tensors and plain values (dicts, lists, tuples, numbers, strings, None), so it is
read with torch's weights-only unpickler: a file that asks for anything else (a class, a function, a
numpy array) is refused instead of being executed. Every way a file can fail to be a usable checkpoint
becomes one CheckpointError line naming the file.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import zipfile

import torch

# What every checkpoint written by `asr train` carries; resuming needs the training state too.
MODEL_KEYS = ("model", "train_config", "feature_config", "vocab", "blank_id")
RESUME_KEYS = MODEL_KEYS + ("optimizer", "scheduler", "epoch", "batch")


class CheckpointError(ValueError):
    """The checkpoint file cannot be used; one line for users."""


def save(obj: dict, path: str) -> None:
    """torch.save to a per-process temporary name, then rename: a crash never leaves half a checkpoint."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load(path: str, map_location="cpu", required: tuple[str, ...] = MODEL_KEYS) -> dict:
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such file")
    # torch.save always writes a zip archive; anything else (empty, truncated, text, a raw pickle) is not ours.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a training checkpoint (empty, truncated, corrupt or another format)")
    try:
        ck = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        what = f" ({found.group(1)})" if found else ""
        raise CheckpointError(f"{path}: refused: it holds Python objects{what}, not only tensors and plain values, "
                              "and loading it could run code") from None
    except Exception as e:  # zip members missing or damaged: many types, none of them a checkpoint
        raise CheckpointError(f"{path}: not a training checkpoint, corrupt ({type(e).__name__})") from None
    if not isinstance(ck, dict):
        raise CheckpointError(f"{path}: not a training checkpoint (holds a {type(ck).__name__}, not a dict)")
    missing = [k for k in required if k not in ck]
    if missing:
        raise CheckpointError(f"{path}: not a training checkpoint (missing {', '.join(missing)})")
    if not isinstance(ck["model"], dict) or not all(isinstance(v, torch.Tensor) for v in ck["model"].values()):
        raise CheckpointError(f"{path}: not a training checkpoint (its model is not a dict of tensors)")
    return ck


def load_weights(module: torch.nn.Module, state: dict, path: str) -> None:
    """load_state_dict, with a mismatch (another architecture) as one line instead of torch's essay."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()
        detail = first[1].strip() if len(first) > 1 else (first[0] if first else type(e).__name__)
        raise CheckpointError(f"{path}: its weights do not fit this model's architecture ({detail.rstrip('.')})") \
            from None


def check_finite(ck: dict, path: str) -> None:
    """Weights and normalisation statistics must be finite numbers: NaN ones make a model that emits junk."""
    for name, tensor in ck["model"].items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{path}: weight {name} is not finite (NaN or infinity): the run diverged")
    feat = ck["feature_config"]
    if not isinstance(feat, dict):
        raise CheckpointError(f"{path}: feature_config is not a dict")
    for key in ("mean", "std"):
        values = feat.get(key)
        if not isinstance(values, (list, tuple)) or not values:
            raise CheckpointError(f"{path}: no normalisation statistics ({key})")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
            raise CheckpointError(f"{path}: normalisation statistics ({key}) are not finite numbers")
    if any(v <= 0 for v in feat["std"]):
        raise CheckpointError(f"{path}: normalisation statistics (std) are not all above 0")


def build_model(ck: dict, path: str):
    """The AcousticModel a checkpoint describes, with its weights, in eval mode."""
    from .model import AcousticModel, ModelConfig

    try:
        model = AcousticModel(ModelConfig.from_dict(ck["train_config"]["model"]))
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: bad model configuration ({detail})") from None
    load_weights(model, ck["model"], path)
    return model.eval()
