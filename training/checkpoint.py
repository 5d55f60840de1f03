"""Training checkpoints: their schema, written atomically, read without ever running code from the file,
checked, and averaged.

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

from asr.atomic import atomic_write
from asr.messages import first_line

# What every checkpoint written by `asr train` carries; resuming needs the training state too.
MODEL_KEYS = ("model", "train_config", "feature_config", "vocab", "blank_id")
RESUME_KEYS = MODEL_KEYS + ("optimizer", "scheduler", "epoch", "batch")


class CheckpointError(ValueError):
    """The checkpoint file cannot be used; one line for users."""


def weights(meta: dict, model_state: dict, epoch: int, dev: dict | None = None, **extra) -> dict:
    """What export and evaluation need (MODEL_KEYS): the run's description (meta: train_config,
    feature_config, vocab, blank_id, data, parameters), the weights, the epochs done, dev scores."""
    return {**meta, "model": model_state, "epoch": epoch, **({"dev": dev} if dev is not None else {}), **extra}


def training_state(meta: dict, model: torch.nn.Module, optimizer, scheduler, epoch: int, batch: int, best: dict,
                   dev: dict | None = None) -> dict:
    """A weights checkpoint plus what an exact resume needs (RESUME_KEYS): resumed at (epoch, batch)."""
    return weights(meta, model.state_dict(), epoch, dev, optimizer=optimizer.state_dict(),
                   scheduler=scheduler.state_dict(), batch=batch, best=best)


def save(obj: dict, path: str) -> None:
    """torch.save to a unique temporary name, then rename: a crash never leaves half a checkpoint."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


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


def without_aux(ck: dict) -> dict:
    """The checkpoint as the model file holds it: without the training-only auxiliary head (model.aux_vocab_size)."""
    model_cfg = ck["train_config"].get("model", {}) if isinstance(ck.get("train_config"), dict) else {}
    if not model_cfg.get("aux_vocab_size"):
        return ck
    train_config = {**ck["train_config"], "model": {**model_cfg, "aux_vocab_size": 0}}
    weights = {k: v for k, v in ck["model"].items() if not k.startswith("aux.")}
    return {**ck, "train_config": train_config, "model": weights}


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


def load_training_state(path: str, model: torch.nn.Module, lr: float, device) -> dict:
    """A resume checkpoint (last.pt), its weights loaded into model, its optimizer state checked to fit."""
    ck = load(path, map_location=device, required=RESUME_KEYS)
    load_weights(model, ck["model"], path)
    try:
        # A scratch optimizer: the run's own loads the state only once its scheduler exists, which the
        # scheduler's construction would otherwise overwrite (the first resumed step at the wrong rate).
        torch.optim.AdamW(model.parameters(), lr=lr).load_state_dict(ck["optimizer"])
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: its optimizer state does not fit this model ({e})") from None
    if not isinstance(ck["scheduler"], dict) or not all(
            isinstance(ck[k], int) and ck[k] >= 0 for k in ("epoch", "batch")):
        raise CheckpointError(f"{path}: not a training state (bad scheduler, epoch or batch)")
    return ck


def average(paths: list[str]) -> dict:
    """The mean of several checkpoints' weights, described as the last of them; averaged_from names them."""
    cks = [load(p) for p in paths]
    mean = {k: sum(ck["model"][k].float() for ck in cks) / len(cks) for k in cks[-1]["model"]}
    return {**{k: v for k, v in cks[-1].items() if k != "model"}, "model": mean,
            "averaged_from": [os.path.basename(p) for p in paths]}


def build_model(ck: dict, path: str):
    """The model a checkpoint describes, with its weights, in eval mode."""
    from .model import ModelConfig, build_model as build

    try:
        model = build(ModelConfig.from_dict(ck["train_config"]["model"]))
    except (TypeError, KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: bad model configuration ({first_line(e)})") from None
    load_weights(model, ck["model"], path)
    return model.eval()
