"""The model file's self-description: what export writes into ONNX metadata_props and the runtime reads."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .features import FeatureConfig
from .messages import clip

SCHEMA_VERSION = 1
MAX_CHUNK_STEPS = 1000  # 30 s per streaming call with the usual stack of 3: far past any useful latency
MAX_LOOKAHEAD_STEPS = 100  # 3 s of delay with a stack of 3: far past any streaming use
MAX_STATES = 64
MAX_STATE_VALUES = 1 << 24  # per stream: 64 MB of float32, a bound that a sane model file stays far below


@dataclass(frozen=True)
class StateSpec:
    """One tensor of a streaming model's state: its shape holds None at the batch axis."""

    name: str
    shape: tuple
    batch_axis: int

    def shape_for(self, n: int) -> tuple[int, ...]:
        return tuple(n if d is None else d for d in self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "batch_axis": self.batch_axis}

    @classmethod
    def from_dict(cls, d) -> "StateSpec":
        """ValueError (one line) unless d is {"name", "shape" (whole numbers, null at the batch axis), "batch_axis"}."""
        if not isinstance(d, dict) or set(d) != {"name", "shape", "batch_axis"}:
            raise ValueError(f"metadata asr.states entry {_clip(d)} is not {{\"name\", \"shape\", \"batch_axis\"}}")
        name, shape, axis = d["name"], d["shape"], d["batch_axis"]
        if not isinstance(name, str) or not name or name == "features":
            raise ValueError(f"metadata asr.states name {_clip(name)} is not a state input name")
        if not isinstance(shape, list) or not 1 <= len(shape) <= 8:
            raise ValueError(f"metadata asr.states {name}: shape {_clip(shape)} is not a list of 1 to 8 sizes")
        _whole(axis, f"asr.states {name} batch_axis", 0, len(shape) - 1)
        for k, dim in enumerate(shape):
            if k == axis:
                if dim is not None:
                    raise ValueError(f"metadata asr.states {name}: shape {_clip(shape)} needs null at batch axis {axis}")
            else:
                _whole(dim, f"asr.states {name} shape[{k}]", 1)
        if math.prod(d for d in shape if d is not None) > MAX_STATE_VALUES:
            raise ValueError(f"metadata asr.states {name}: shape {shape} is over {MAX_STATE_VALUES} values per stream")
        return cls(name, tuple(shape), axis)


@dataclass
class ModelInfo:
    feature: FeatureConfig
    vocab: list[str]
    blank_id: int
    stack: int  # feature frames per model step
    chunk_steps: int  # model steps per streaming call (latency vs. efficiency)
    states: list[StateSpec]  # the graph's state inputs (each with an output named NAME_out), zeros at the start
    lookahead_steps: int = 0  # a step's output appears this many steps later (see recognizer.Stream)
    units: str = "chars"  # what the tokens are: "chars" spell words, "phones" need a lexicon (asr.phones)
    version: str = "0"
    training: dict = field(default_factory=dict)  # data summary, config, command
    accuracy: dict = field(default_factory=dict)  # measured dev WER/CER

    def __post_init__(self):
        if isinstance(self.states, list):
            self.states = [s if isinstance(s, StateSpec) else StateSpec.from_dict(s) for s in self.states]

    @property
    def step_seconds(self) -> float:
        return self.stack * self.feature.hop_length / self.feature.sample_rate

    def to_props(self) -> dict[str, str]:
        d = asdict(self)
        d["feature"] = self.feature.to_dict()
        d["states"] = [s.to_dict() for s in self.states]
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
        if "states" not in d:
            d["states"] = _lstm_states(d)
        if not isinstance(d["states"], list) or len(d["states"]) > MAX_STATES:
            raise ValueError(f"metadata asr.states is not a list of at most {MAX_STATES} states")
        required = [f.name for f in fields(cls) if f.name not in ("lookahead_steps", "units", "version", "training",
                                                                         "accuracy")]
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
        _validate_units(self.units, vocab, self.blank_id)
        _whole(self.stack, "stack", 1)
        _whole(self.chunk_steps, "chunk_steps", 1, MAX_CHUNK_STEPS)
        _whole(self.lookahead_steps, "lookahead_steps", 0, MAX_LOOKAHEAD_STEPS)
        if not isinstance(self.states, list) or not all(isinstance(s, StateSpec) for s in self.states):
            raise ValueError("metadata asr.states is not a list of states")
        for s in self.states:  # as a file would declare it (specs built in code skip from_dict)
            StateSpec.from_dict(s.to_dict())
        names = [s.name for s in self.states]
        if len(set(names)) != len(names):
            raise ValueError(f"metadata asr.states names {names} are not distinct")
        for name in ("training", "accuracy"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"metadata asr.{name} is not an object")
        _validate_feature(self.feature)

    def summary(self) -> dict:
        """Everything but the bulky arrays, for `asr info`."""
        d = asdict(self)
        d["feature"] = {k: v for k, v in self.feature.to_dict().items() if k not in ("mel_matrix", "mean", "std")}
        d["states"] = [s.to_dict() for s in self.states]
        return d


def _validate_units(units, vocab: list[str], blank_id: int) -> None:
    from .phones import PHONES, UNITS, WORD_BOUNDARY

    if units not in UNITS:
        raise ValueError(f"metadata asr.units is {_clip(units)}, not one of {', '.join(UNITS)}")
    if units == "phones":
        unknown = [t for i, t in enumerate(vocab) if i != blank_id and t != WORD_BOUNDARY and t not in PHONES]
        if unknown or WORD_BOUNDARY not in vocab:
            raise ValueError(f"metadata asr.vocab of a phone model must be ARPAbet phones and the word boundary "
                             f"{WORD_BOUNDARY!r}" + (f" (not {_clip(unknown[0])})" if unknown else ""))


def _lstm_states(d: dict) -> list[dict]:
    """What files written before asr.states declare: an LSTM's h [layers, N, asr.state_size] and
    c [layers, N, asr.hidden] (hidden named the cell size and state_size the hidden size back then)."""
    missing = [k for k in ("layers", "hidden", "state_size") if k not in d]
    if missing:
        raise ValueError(f"metadata lacks asr.states (or {', '.join('asr.' + k for k in missing)})")
    for name in ("layers", "hidden", "state_size"):
        _whole(d[name], name, 1)
    return [{"name": "h", "shape": [d["layers"], None, d["state_size"]], "batch_axis": 1},
            {"name": "c", "shape": [d["layers"], None, d["hidden"]], "batch_axis": 1}]


def _clip(value, n: int = 40) -> str:
    return clip(json.dumps(value) if not isinstance(value, StateSpec) else repr(value), n)


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
    for name in ("fmin", "fmax", "log_floor", "norm_seconds"):
        v = getattr(f, name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"metadata feature.{name} is {v!r}, not a finite number")
    if f.norm_seconds < 0:
        raise ValueError(f"metadata feature.norm_seconds is {f.norm_seconds!r}, not at least 0")
    if not isinstance(f.norm_variance, bool):
        raise ValueError(f"metadata feature.norm_variance is {f.norm_variance!r}, not true or false")
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
