"""The streaming acoustic models (PyTorch): stacked frames -> character (or phone) log-probs, with a declared
state.

Every model is one interface, the same as the runtime's: `states` declares the state (names, shapes with
the batch axis, which the exporter writes into the model file), `initial_state(n)` is zeros of those
shapes, `step(features, state) -> (log_probs, state)` is what the exported graph computes for one chunk,
and `lookahead_steps` says how many steps later a step's output appears. `forward(features)` is the
offline definition that training optimises and the ONNX check compares against: the stream from the
initial state, flushed with `lookahead_steps` of zero (normalised) features, its first outputs dropped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from asr.metadata import StateSpec


@dataclass
class ModelConfig:
    n_mels: int = 80
    stack: int = 3  # frames per model step: 3 x 10 ms = 30 ms
    hidden: int = 320
    layers: int = 3
    dropout: float = 0.15
    vocab_size: int = 29
    # Future steps a causal convolution after the LSTM looks at (LookaheadAcousticModel); 0 = the plain
    # LSTM-CTC the bundled model is.
    lookahead: int = 0
    # Outputs of an auxiliary head on the same hidden features (training only, dropped at export); 0 = none.
    aux_vocab_size: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class StreamingModel(nn.Module):
    config: ModelConfig

    @property
    def states(self) -> list[StateSpec]:
        raise NotImplementedError

    @property
    def lookahead_steps(self) -> int:
        return 0

    def initial_state(self, n: int = 1, device=None) -> dict[str, torch.Tensor]:
        return {s.name: torch.zeros(s.shape_for(n), device=device) for s in self.states}

    def hidden(self, features: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """features [N, T, n_mels] (T a multiple of stack) -> (what the output layer reads [N, T/stack, H], next
        state)."""
        raise NotImplementedError

    def step(self, features: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """features [N, T, n_mels] (T a multiple of stack) -> (log_probs [N, T/stack, V], next state)."""
        z, state = self.hidden(features, state)
        return torch.log_softmax(self.out(z), dim=-1), state

    def forward(self, features: torch.Tensor, aux: bool = False):
        """Offline: log_probs [N, T/stack, V], step t's output at t (the streaming definition, flushed); with aux,
        also the auxiliary head's log-probs."""
        late = self.lookahead_steps
        if late:
            features = nn.functional.pad(features, (0, 0, 0, late * self.config.stack))
        z, _ = self.hidden(features, self.initial_state(features.shape[0], features.device))
        z = z[:, late:]
        log_probs = torch.log_softmax(self.out(z), dim=-1)
        return (log_probs, torch.log_softmax(self.aux(z), dim=-1)) if aux else log_probs

    def _heads(self, config: ModelConfig) -> None:
        self.out = nn.Linear(config.hidden, config.vocab_size)
        if config.aux_vocab_size:
            self.aux = nn.Linear(config.hidden, config.aux_vocab_size)

    def _stacked(self, features: torch.Tensor) -> torch.Tensor:
        n, t, f = features.shape
        return features.reshape(n, t // self.config.stack, f * self.config.stack)

    def _lstm(self, config: ModelConfig) -> nn.LSTM:
        # LSTM projections (proj_size) are not used: torch's ONNX exporter cannot export them.
        return nn.LSTM(input_size=config.n_mels * config.stack, hidden_size=config.hidden, num_layers=config.layers,
                       dropout=config.dropout if config.layers > 1 else 0.0, batch_first=True)


class AcousticModel(StreamingModel):
    """Unidirectional LSTM -> linear -> log-softmax; state h, c [layers, N, hidden] (the bundled model)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.lstm = self._lstm(config)
        self.dropout = nn.Dropout(config.dropout)
        self._heads(config)

    @property
    def states(self) -> list[StateSpec]:
        shape = (self.config.layers, None, self.config.hidden)
        return [StateSpec("h", shape, 1), StateSpec("c", shape, 1)]

    def hidden(self, features, state):
        y, (h, c) = self.lstm(self._stacked(features), (state["h"], state["c"]))
        return self.dropout(y), {"h": h, "c": c}


class LookaheadAcousticModel(StreamingModel):
    """LSTM, then a depthwise causal convolution over its outputs at steps t .. t + L (L = config.lookahead)
    -> linear -> log-softmax. The convolution keeps the last L LSTM outputs in the state ("past"), so the
    output for step t comes out with step t + L."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.lookahead < 1:
            raise ValueError(f"model.lookahead = {config.lookahead}: this architecture needs at least 1")
        self.config = config
        self.lstm = self._lstm(config)
        self.dropout = nn.Dropout(config.dropout)
        self.lookahead = nn.Conv1d(config.hidden, config.hidden, config.lookahead + 1, groups=config.hidden)
        self._heads(config)

    @property
    def lookahead_steps(self) -> int:
        return self.config.lookahead

    @property
    def states(self) -> list[StateSpec]:
        c = self.config
        lstm = (c.layers, None, c.hidden)
        return [StateSpec("lstm_hidden", lstm, 1), StateSpec("lstm_cell", lstm, 1),
                StateSpec("past", (None, c.lookahead, c.hidden), 0)]

    def hidden(self, features, state):
        y, (h, c) = self.lstm(self._stacked(features), (state["lstm_hidden"], state["lstm_cell"]))
        window = torch.cat([state["past"], self.dropout(y)], dim=1)  # [N, L + T, hidden]
        z = self.lookahead(window.transpose(1, 2)).transpose(1, 2)  # [N, T, hidden]
        past = window[:, -self.config.lookahead:]
        return z, {"lstm_hidden": h, "lstm_cell": c, "past": past}


def passthrough_lookahead(weights: dict, config: ModelConfig) -> dict:
    """A plain model's weights for the lookahead architecture: its convolution passes step t through unchanged
    (tap 0 is step t itself, taps 1 .. L its future), so training starts from the plain model's function, its
    outputs L steps late, and learns what the future is worth from there."""
    tap = torch.zeros(config.hidden, 1, config.lookahead + 1)
    tap[:, 0, 0] = 1.0
    return {**weights, "lookahead.weight": tap, "lookahead.bias": torch.zeros(config.hidden)}


def build_model(config: ModelConfig) -> StreamingModel:
    """The architecture a configuration describes."""
    return LookaheadAcousticModel(config) if config.lookahead else AcousticModel(config)
