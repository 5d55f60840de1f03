"""Training configuration: dataclasses with defaults, loadable from TOML, overridable by flags."""

from __future__ import annotations

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
from dataclasses import asdict, dataclass, field, fields, is_dataclass

from .model import ModelConfig


@dataclass
class AugmentConfig:
    speeds: tuple[float, ...] = (0.9, 1.0, 1.1)  # speed perturbation factors (features cached per factor)
    freq_masks: int = 2
    freq_mask_width: int = 12
    time_masks_per_second: float = 0.5
    time_mask_width: int = 20  # frames
    gain_db: float = 6.0  # random gain range, +/-: a constant shift of the log-mel features
    # Drop 0..N leading frames per utterance: the model then sees every phase of its frame stacking, so
    # a few milliseconds of leading silence do not change the words (N = stack - 1 covers all phases).
    shift_frames: int = 0
    # Waveform augmentation (features of the chosen utterances are computed on the fly, not cached).
    noise_dir: str = ""  # folder of noise recordings, e.g. ../shared/data/noise
    noise_prob: float = 0.0
    noise_snr_db: tuple[float, float] = (5.0, 25.0)
    rir_dir: str = ""  # folder of room impulse responses, e.g. ../shared/data/rir
    rir_prob: float = 0.0


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    epochs: int = 20
    batch_seconds: float = 320.0  # total audio per batch, padding included
    max_seconds: float = 20.0
    min_seconds: float = 0.3
    lr: float = 1.5e-3
    weight_decay: float = 1e-2
    warmup_steps: int = 300
    final_lr_ratio: float = 0.05  # cosine decay ends at lr * this
    grad_clip: float = 5.0
    seed: int = 1234
    threads: int = 0  # torch intra-op threads; 0 = torch default
    checkpoint_minutes: float = 5.0
    average_last: int = 3  # average the weights of the last N epoch checkpoints into averaged.pt
    max_steps_per_epoch: int = 0  # 0 = whole epoch; small values for smoke tests
    # Checkpoint whose weights start this run (fine-tuning on new data, or a warm restart with a fresh
    # schedule). Its architecture and normalisation statistics are kept: the weights only make sense with them.
    init: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _apply(obj, values: dict, prefix: str = "") -> None:
    known = {f.name: f for f in fields(obj)}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown configuration key {prefix}{key}")
        current = getattr(obj, key)
        if is_dataclass(current):
            if not isinstance(value, dict):
                raise ValueError(f"{prefix}{key} is a section, not a value")
            _apply(current, value, f"{prefix}{key}.")
        elif isinstance(current, tuple):
            setattr(obj, key, tuple(value))
        elif isinstance(current, bool):
            setattr(obj, key, bool(value))
        elif isinstance(current, (int, float, str)) and not isinstance(value, type(current)):
            setattr(obj, key, type(current)(value))
        else:
            setattr(obj, key, value)


def from_dict(d: dict) -> TrainConfig:
    cfg = TrainConfig()
    _apply(cfg, d)
    return cfg


def load_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """TOML file (optional) then `key.sub=value` overrides, each value parsed as TOML."""
    cfg = TrainConfig()
    if path:
        with open(path, "rb") as f:
            _apply(cfg, tomllib.load(f))
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        nested: dict = {}
        node = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        _apply(cfg, nested)
    return cfg
