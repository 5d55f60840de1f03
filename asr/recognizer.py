"""Recognizer (a loaded model) and Stream (one audio stream's state): the pipeline's single home."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib.resources import files

import numpy as np

from .decoding import GreedyDecoder, Word, tokens_to_words
from .endpoint import EndpointConfig
from .features import FeatureExtractor
from .model import ModelError, OnnxAcousticModel
from .vocab import Vocabulary

# The repository's assets/ folder is the package asr.assets (pyproject.toml maps it), so one lookup finds the
# bundled files in an editable install and in a wheel alike.
ASSETS = str(files("asr.assets"))
SAMPLES = os.path.join(ASSETS, "samples")
BUNDLED_MODEL = os.path.join(ASSETS, "en-lstm-ctc.onnx")
BUNDLED_LM = os.path.join(ASSETS, "en-books-4gram.npz")


def default_model_path() -> str:
    return os.environ.get("ASR_MODEL") or BUNDLED_MODEL


def bundled_lm_for(model_path: str) -> str | None:
    """The bundled LM when model_path is the bundled model (the LM's weights were tuned with it), else None."""
    try:
        same = os.path.samefile(model_path, BUNDLED_MODEL)
    except OSError:
        return None
    return BUNDLED_LM if same and os.path.isfile(BUNDLED_LM) else None


@dataclass
class Result:
    final: bool
    text: str
    start: float
    end: float
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"type": "final" if self.final else "partial", "text": self.text, "start": self.start,
                "end": self.end, "words": [vars(w) for w in self.words]}


class Recognizer:
    """A loaded model plus decoding options. beam=None and no LM: greedy decoding."""

    def __init__(self, model: OnnxAcousticModel, endpoint: EndpointConfig | None = None, beam=None, lm=None):
        self.model = model
        self.info = model.info
        self.vocab = Vocabulary(self.info.vocab, self.info.blank_id)
        self.endpoint = endpoint or EndpointConfig()
        self.lm = lm
        if beam is None and lm is not None:
            from .beam import BeamConfig

            beam = BeamConfig()
        self.beam = beam

    @classmethod
    def load(cls, path: str | None = None, device: str = "auto", threads: int = 0,
             endpoint: EndpointConfig | None = None, beam=None, lm: str | bool | None = True) -> "Recognizer":
        """beam: a beam.BeamConfig for beam search; lm: a language model file (ARPA, .npz or KenLM binary), True
        for the bundled LM when the model is the bundled one, or False/None for none. An LM implies beam search."""
        path = path or default_model_path()
        if not os.path.exists(path):
            raise ModelError(f"{path}: model file not found")
        if lm is True:
            lm = bundled_lm_for(path)
        language_model = None
        if lm:
            from .lm import LanguageModel

            language_model = LanguageModel(lm)
        return cls(OnnxAcousticModel(path, device=device, threads=threads), endpoint, beam, language_model)

    def decoder(self, hotwords: dict[str, float] | None = None, lm: bool = True):
        """Greedy, or beam search when configured or when this stream has hotwords of its own; lm=False leaves the
        LM out (greedy unless there are hotwords)."""
        if not hotwords and (self.beam is None or (not lm and self.lm is not None)):
            return GreedyDecoder(self.vocab)
        from dataclasses import replace

        from .beam import BeamConfig, BeamDecoder

        cfg = self.beam or BeamConfig()
        if hotwords:
            cfg = replace(cfg, hotwords={**cfg.hotwords, **hotwords})
        return BeamDecoder(self.vocab, cfg, self.lm if lm else None)

    @property
    def sample_rate(self) -> int:
        return self.info.feature.sample_rate

    @property
    def chunk_frames(self) -> int:
        """Feature frames per streaming model call."""
        return self.info.stack * self.info.chunk_steps

    def stream(self, hotwords: dict[str, float] | None = None, lm: bool = True) -> "Stream":
        """A new audio stream; hotwords (word -> bonus) apply to it alone, and lm=False decodes it without the LM."""
        return Stream(self, hotwords, lm)

    def transcribe(self, audio: str | np.ndarray | Iterable[np.ndarray]) -> Iterator[Result]:
        """Final segments of a file path, a sample array or an iterable of blocks, lazily."""
        from .audio import read_blocks

        if isinstance(audio, (str, os.PathLike)):
            blocks = read_blocks(os.fspath(audio), self.sample_rate)
        elif isinstance(audio, np.ndarray):
            blocks = [audio]
        else:
            blocks = audio
        stream = self.stream()
        for block in blocks:
            yield from (r for r in stream.accept(block) if r.final)
        yield from (r for r in stream.finish() if r.final)


class Stream:
    """Feed samples with accept(); get partial and final Results. Any split gives the same finals."""

    def __init__(self, recognizer: Recognizer, hotwords: dict[str, float] | None = None, lm: bool = True):
        self.rec = recognizer
        info = recognizer.info
        self.frontend = FeatureExtractor(info.feature)
        self.h, self.c = recognizer.model.initial_state(1)
        self.decoder = recognizer.decoder(hotwords, lm)
        self._feats = np.zeros((0, info.feature.n_mels), np.float32)
        self._segment_start_step = 0
        self._last_partial = ""
        self.samples_seen = 0

    @property
    def time(self) -> float:
        """Seconds of audio accepted so far."""
        return self.samples_seen / self.rec.sample_rate

    @property
    def decoded_samples(self) -> int:
        """How many input samples the results so far account for (the rest waits for a full chunk)."""
        f = self.rec.info.feature
        steps = self.decoder.steps
        return steps * self.rec.info.stack * f.hop_length + (f.win_length - f.hop_length) if steps else 0

    def accept(self, samples: np.ndarray) -> list[Result]:
        """Feed samples; run the model on every complete chunk (in one call) and decode."""
        self.push(samples)
        feats = self.take_chunks()
        return self.run(feats) if feats is not None else []

    def push(self, samples: np.ndarray) -> None:
        """Feed samples to the front-end only; take_chunks() then hands the model input out."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.samples_seen += len(samples)
        feats = self.frontend.accept(samples)
        if len(feats):
            self._feats = np.concatenate([self._feats, feats]) if len(self._feats) else feats

    def take_chunks(self, max_chunks: int = 0) -> np.ndarray | None:
        """Remove and return up to max_chunks (0: all) complete chunks of features [T, F], or None.

        With apply(), this lets a server batch the ready chunks of many streams into one model call.
        """
        n = len(self._feats) // self.rec.chunk_frames
        if max_chunks:
            n = min(n, max_chunks)
        if not n:
            return None
        chunk, self._feats = self._feats[: n * self.rec.chunk_frames], self._feats[n * self.rec.chunk_frames :]
        return chunk

    def run(self, feats: np.ndarray, check_endpoint: bool = True) -> list[Result]:
        log_probs, h, c = self.rec.model(feats[None], self.h, self.c)
        return self.apply(log_probs[0], h, c, check_endpoint)

    def finish(self) -> list[Result]:
        """End of audio: decode what is buffered (the last step padded by repeating the last frame)."""
        results = []
        stack = self.rec.info.stack
        rest = self.take_chunks()
        if rest is not None:
            results += self.run(rest)
        if len(self._feats):
            pad = (-len(self._feats)) % stack
            feats = np.concatenate([self._feats, np.repeat(self._feats[-1:], pad, axis=0)])
            self._feats = self._feats[:0]
            results += self.run(feats, check_endpoint=False)
        results = [r for r in results if r.final]
        final = self._close_segment()
        return results + ([final] if final else [])

    def apply(self, log_probs: np.ndarray, h: np.ndarray, c: np.ndarray, check_endpoint: bool = True) -> list[Result]:
        """Take the model's output for the features last taken ([steps, V] and the new state); decode."""
        self.h, self.c = h, c
        results = []
        # Endpoints are checked per chunk, so where a segment closes does not depend on block sizes.
        step_chunk = self.rec.info.chunk_steps
        for i in range(0, len(log_probs), step_chunk):
            self.decoder.accept(log_probs[i : i + step_chunk])
            if check_endpoint and self._endpoint():
                final = self._close_segment()
                if final:
                    results.append(final)
        text = self.decoder.text
        if text and text != self._last_partial:
            self._last_partial = text
            results.append(self._result(final=False))
        return results

    def _endpoint(self) -> bool:
        d, step = self.decoder, self.rec.info.step_seconds
        has_speech = bool(d.tokens)
        last = d.last_nonblank_step if has_speech else self._segment_start_step - 1
        return self.rec.endpoint.is_endpoint(has_speech, (d.steps - 1 - last) * step,
                                             (d.steps - self._segment_start_step) * step)

    def _result(self, final: bool) -> Result:
        step = self.rec.info.step_seconds
        words = tokens_to_words(self.decoder.tokens, self.rec.vocab, step)
        text = " ".join(w.text for w in words)
        start = words[0].start if words else round(self._segment_start_step * step, 3)
        end = words[-1].end if words else round(self.decoder.steps * step, 3)
        return Result(final, text, start, end, words)

    def _close_segment(self) -> Result | None:
        if hasattr(self.decoder, "finalize"):  # beam search: score the last word before choosing
            self.decoder.finalize()
        result = self._result(final=True) if self.decoder.tokens else None
        if result is not None and not result.text:
            result = None
        self.decoder.reset()
        self._segment_start_step = self.decoder.steps
        self._last_partial = ""
        return result
