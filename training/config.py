"""Training configuration: dataclasses with defaults, loadable from TOML, overridable by flags."""

from __future__ import annotations

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass

from asr.messages import first_line

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
    # What the model outputs: "chars" (letters, apostrophe and space, the bundled model) or "phones" (ARPAbet and a
    # word boundary, from CMUdict, espeak-ng for words it lacks; decoded with a pronunciation lexicon).
    targets: str = "chars"
    # A character model's auxiliary phone-CTC head, in training only: loss = (1 - w) char CTC + w phone CTC. The
    # head is dropped at export, so the model file and the runtime are those of a plain character model.
    aux_phone_weight: float = 0.0
    # Streaming normalisation of the log-mels after the global statistics (asr.features.RunningNorm): a running
    # mean per bin with this time constant in seconds, 0 = off; with norm_variance a running variance too. Part
    # of the model like its architecture: a warm start keeps its init's, or adds it to an init without one.
    norm_seconds: float = 0.0
    norm_variance: bool = False
    # Checkpoint whose weights start this run (fine-tuning on new data, or a warm restart with a fresh
    # schedule). Its architecture and normalisation statistics are kept: the weights only make sense with them.
    init: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        """ValueError naming the first field whose value cannot make a sensible run."""
        m, a = self.model, self.augment
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"), ("batch_seconds", self.batch_seconds > 0, "above 0"),
            ("max_seconds", self.max_seconds > 0, "above 0"),
            ("min_seconds", 0 <= self.min_seconds < self.max_seconds, "from 0 to below max_seconds"),
            ("lr", self.lr > 0, "above 0"), ("weight_decay", self.weight_decay >= 0, "at least 0"),
            ("warmup_steps", self.warmup_steps >= 0, "at least 0"),
            ("final_lr_ratio", 0 <= self.final_lr_ratio <= 1, "from 0 to 1"),
            ("grad_clip", self.grad_clip > 0, "above 0"), ("seed", self.seed >= 0, "at least 0"),
            ("threads", self.threads >= 0, "at least 0"),
            ("checkpoint_minutes", self.checkpoint_minutes >= 0, "at least 0"),
            ("average_last", self.average_last >= 0, "at least 0"),
            ("max_steps_per_epoch", self.max_steps_per_epoch >= 0, "at least 0"),
            ("targets", self.targets in ("chars", "phones"), '"chars" or "phones"'),
            ("aux_phone_weight",
             0 <= self.aux_phone_weight < 1 and not (self.aux_phone_weight and self.targets != "chars"),
             'from 0 to below 1, with targets = "chars"'),
            ("norm_seconds", self.norm_seconds >= 0, "at least 0"),
            ("model.n_mels", m.n_mels >= 1, "at least 1"), ("model.stack", m.stack >= 1, "at least 1"),
            ("model.hidden", m.hidden >= 1, "at least 1"), ("model.layers", m.layers >= 1, "at least 1"),
            ("model.dropout", 0 <= m.dropout < 1, "from 0 to below 1"),
            ("model.lookahead", m.lookahead >= 0, "at least 0"),
            ("augment.speeds", all(s > 0 for s in a.speeds), "all above 0"),
            ("augment.freq_masks", a.freq_masks >= 0, "at least 0"),
            ("augment.freq_mask_width", a.freq_mask_width >= 0, "at least 0"),
            ("augment.time_masks_per_second", a.time_masks_per_second >= 0, "at least 0"),
            ("augment.time_mask_width", a.time_mask_width >= 0, "at least 0"),
            ("augment.gain_db", a.gain_db >= 0, "at least 0"),
            ("augment.shift_frames", a.shift_frames >= 0, "at least 0"),
            ("augment.noise_prob", 0 <= a.noise_prob <= 1, "from 0 to 1"),
            ("augment.rir_prob", 0 <= a.rir_prob <= 1, "from 0 to 1"),
            ("augment.noise_snr_db", len(a.noise_snr_db) == 2 and a.noise_snr_db[0] <= a.noise_snr_db[1],
             "a pair MIN, MAX"),
        ]
        for name, ok, want in checks:
            value = self
            for part in name.split("."):
                value = getattr(value, part)
            numbers = value if isinstance(value, tuple) else (value,) if not isinstance(value, str) else ()
            if not ok or not all(math.isfinite(v) for v in numbers):
                raise ValueError(f"{name} = {value!r} must be {want}")


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
        else:
            setattr(obj, key, _convert(current, value, f"{prefix}{key}"))


def _convert(current, value, name: str):
    """value in the type of the default it replaces (so TOML 1 can set a float), or a ValueError naming it."""
    kind = type(current)
    try:
        if isinstance(current, tuple):
            items = list(value) if isinstance(value, (list, tuple)) else None
            if items is None or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
                raise TypeError
            return tuple(float(v) for v in items)
        if isinstance(current, bool):
            if not isinstance(value, bool):
                raise TypeError
            return value
        if isinstance(current, int) and isinstance(value, float) and not value.is_integer():
            raise TypeError
        if isinstance(current, (int, float)) and isinstance(value, (bool, str)):
            raise TypeError
        if isinstance(current, str) and isinstance(value, (dict, list)):
            raise TypeError
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} = {value!r} is not {_KINDS[kind]}") from None


_KINDS = {int: "a whole number", float: "a number", tuple: "a list of numbers", str: "a string", bool: "true or false"}


def from_dict(d: dict) -> TrainConfig:
    cfg = TrainConfig()
    _apply(cfg, d)
    cfg.validate()
    return cfg


def load_config(path: str | None = None, overrides: list[str] = ()) -> TrainConfig:
    """TOML file (optional) then `key.sub=value` overrides, each value parsed as TOML."""
    cfg = TrainConfig()
    if path:
        with open(path, "rb") as f:
            try:
                data = tomllib.load(f)
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise ValueError(f"{path}: not a TOML configuration ({first_line(e)[:80]})") from None
        _apply(cfg, data)
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
    cfg.validate()
    return cfg
