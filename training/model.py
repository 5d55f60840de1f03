"""The streaming acoustic model: stacked frames -> unidirectional LSTM -> character log-probs."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass
class ModelConfig:
    n_mels: int = 80
    stack: int = 3  # frames per model step: 3 x 10 ms = 30 ms
    hidden: int = 320
    layers: int = 3
    dropout: float = 0.15
    vocab_size: int = 29

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class AcousticModel(nn.Module):
    """forward(features [N, T, F], h, c) -> (log_probs [N, T/stack, V], h, c); T a multiple of stack."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(
            input_size=config.n_mels * config.stack,
            hidden_size=config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.out = nn.Linear(self.output_size, config.vocab_size)

    @property
    def output_size(self) -> int:
        # LSTM projections (proj_size) are not used: torch's ONNX exporter cannot export them.
        return self.config.hidden

    def state_shapes(self, batch: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
        c = self.config
        return (c.layers, batch, self.output_size), (c.layers, batch, c.hidden)

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        h_shape, c_shape = self.state_shapes(batch)
        return torch.zeros(h_shape), torch.zeros(c_shape)

    def forward(self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        n, t, f = features.shape
        stacked = features.reshape(n, t // self.config.stack, f * self.config.stack)
        y, (h, c) = self.lstm(stacked, (h, c))
        return torch.log_softmax(self.out(self.dropout(y)), dim=-1), h, c
