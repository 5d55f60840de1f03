"""The model file's self-description: what export writes into ONNX metadata_props and the runtime reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .features import FeatureConfig

SCHEMA_VERSION = 1


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
        d = {k[4:]: json.loads(v) for k, v in props.items() if k.startswith("asr.") and k != "asr.schema"}
        d["feature"] = FeatureConfig.from_dict(d["feature"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    def summary(self) -> dict:
        """Everything but the bulky arrays, for `asr info`."""
        d = asdict(self)
        d["feature"] = {k: v for k, v in self.feature.to_dict().items() if k not in ("mel_matrix", "mean", "std")}
        return d
