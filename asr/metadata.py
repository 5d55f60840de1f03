"""The model file's self-description: what export writes into ONNX metadata_props and the runtime reads."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .features import FeatureConfig

SCHEMA_VERSION = 1
MAX_CHUNK_STEPS = 1000  # 30 s per streaming call with the usual stack of 3: far past any useful latency


@dataclass
class ModelInfo:
    feature: FeatureConfig
    vocab: list[str]
    blank_id: int
    stack: int  # feature frames per model step
    chunk_steps: int  # model steps per streaming call (latency vs. efficiency)
    layers: int
    hidden: int  # cell state size
    state_size: int  # hidden state size (the LSTM projection size when there is one)
    version: str = "0"
    training: dict = field(default_factory=dict)  # data summary, config, command
    accuracy: dict = field(default_factory=dict)  # measured dev WER/CER

    @property
    def step_seconds(self) -> float:
        return self.stack * self.feature.hop_length / self.feature.sample_rate

    def to_props(self) -> dict[str, str]:
        d = asdict(self)
        d["feature"] = self.feature.to_dict()
        return {"asr.schema": str(SCHEMA_VERSION), **{f"asr.{k}": json.dumps(v) for k, v in d.items()}}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> "ModelInfo":
        if props.get("asr.schema") != str(SCHEMA_VERSION):
            raise ValueError("not an asr model file (missing or unknown asr.schema metadata)")
        d = {}
        for key, value in props.items():
            if key.startswith("asr.") and key != "asr.schema":
                try:
                    d[key[4:]] = json.loads(value)
                except ValueError:
                    raise ValueError(f"metadata {key} is not JSON") from None
        required = [f.name for f in fields(cls) if f.name not in ("version", "training", "accuracy")]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"metadata lacks {', '.join('asr.' + k for k in missing)}")
        if not isinstance(d["feature"], dict):
            raise ValueError("metadata asr.feature is not an object")
        try:
            d["feature"] = FeatureConfig.from_dict(d["feature"])
        except TypeError as e:
            raise ValueError(f"metadata asr.feature: {e}") from None
        info = cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
        info.validate()
        return info

    def validate(self) -> None:
        """ValueError (one line, naming the field) unless the runtime can use every field as it is."""
        vocab = self.vocab
        if not isinstance(vocab, list) or not all(isinstance(t, str) and t for t in vocab):
            raise ValueError("metadata asr.vocab is not a list of non-empty strings")
        if len(vocab) < 2 or len(set(vocab)) != len(vocab):
            raise ValueError(f"metadata asr.vocab has {len(vocab)} tokens, {len(set(vocab))} distinct: a CTC "
                             "vocabulary needs a blank and at least one distinct token")
        _whole(self.blank_id, "blank_id", 0, len(vocab) - 1)
        for name in ("stack", "layers", "hidden", "state_size"):
            _whole(getattr(self, name), name, 1)
        _whole(self.chunk_steps, "chunk_steps", 1, MAX_CHUNK_STEPS)
        for name in ("training", "accuracy"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"metadata asr.{name} is not an object")
        _validate_feature(self.feature)

    def summary(self) -> dict:
        """Everything but the bulky arrays, for `asr info`."""
        d = asdict(self)
        d["feature"] = {k: v for k, v in self.feature.to_dict().items() if k not in ("mel_matrix", "mean", "std")}
        return d


def _whole(value, name: str, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"metadata {name} is {value!r}, not a whole number {bound}")


def _finite_array(value, name: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"metadata feature.{name} is not an array of numbers") from None
    if a.shape != shape:
        raise ValueError(f"metadata feature.{name} has shape {list(a.shape)}, expected {list(shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"metadata feature.{name} holds NaN or infinity")
    return a


def _validate_feature(f: FeatureConfig) -> None:
    for name in ("sample_rate", "win_length", "hop_length", "n_mels"):
        _whole(getattr(f, name), f"feature.{name}", 1)
    _whole(f.n_fft, "feature.n_fft", f.win_length)  # the window is zero-padded to the FFT size
    for name in ("fmin", "fmax", "log_floor"):
        v = getattr(f, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"metadata feature.{name} is {v!r}, not a finite number")
    if f.log_floor <= 0:
        raise ValueError(f"metadata feature.log_floor is {f.log_floor!r}, not above 0")
    # The runtime has no librosa: the model must carry its mel matrix.
    if f.mel_matrix is None:
        raise ValueError("metadata feature.mel_matrix is missing")
    _finite_array(f.mel_matrix, "mel_matrix", (f.n_mels, f.n_fft // 2 + 1))
    if (f.mean is None) != (f.std is None):
        raise ValueError("metadata feature has only one of mean and std")
    if f.mean is not None:
        _finite_array(f.mean, "mean", (f.n_mels,))
        if (_finite_array(f.std, "std", (f.n_mels,)) <= 0).any():
            raise ValueError("metadata feature.std has values that are not above 0")
