"""Recognizer (a loaded model) and Stream (one audio stream's state): the pipeline's single home."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from importlib.resources import files

import numpy as np

from .beam import BeamConfig
from .cache import user_cache
from .decoders import DecodingConfig, make_decoder
from .decoding import tokens_to_words
from .endpoint import EndpointConfig
from .features import FeatureExtractor
from .model import ModelError, OnnxAcousticModel
from .results import Result
from .vad import SAMPLE_RATE as VAD_RATE
from .vad import VadClock, VadConfig, VadModel
from .vocab import Vocabulary

# The repository's assets/ folder is the package asr.assets (pyproject.toml maps it), so one lookup finds the
# bundled files in an editable install and in a wheel alike.
ASSETS = str(files("asr.assets"))
SAMPLES = os.path.join(ASSETS, "samples")
BUNDLED_MODEL = os.path.join(ASSETS, "en-lstm-ctc.onnx")
LM_NAME = "en-books-4gram.npz"
# A VAD endpoint also waits for this many seconds of CTC blanks: the model may emit a word's first letter a
# frame or two before the VAD hears its onset, and the segment must not close between them.
VAD_MIN_BLANKS = 0.25


def default_model_path() -> str:
    return os.environ.get("ASR_MODEL") or BUNDLED_MODEL


def default_lm_path() -> str:
    """Where the book LM is kept: $ASR_LM, else the user's cache. It is built from the text corpora
    (scripts/build_lm.sh), not shipped: 26 MB of derived data stays out of the repository."""
    return os.environ.get("ASR_LM") or user_cache(LM_NAME)


def default_lm_for(model_path: str) -> str | None:
    """The book LM when model_path is the bundled model (the LM's weights were tuned with it) and the LM has
    been built, else None (greedy decoding)."""
    try:
        same = os.path.samefile(model_path, BUNDLED_MODEL)
    except OSError:
        return None
    lm = default_lm_path()
    return lm if same and os.path.isfile(lm) else None


class Recognizer:
    """A loaded model plus its decoding configuration; streams share it. Streams advance one at a time
    (Stream.accept) or many at once in one model call (step_streams)."""

    def __init__(self, model: OnnxAcousticModel, endpoint: EndpointConfig | None = None,
                 decoding: DecodingConfig | None = None, vad: VadConfig | None = None):
        self.model = model
        self.info = model.info
        self.vocab = Vocabulary(self.info.vocab, self.info.blank_id)
        self.endpoint = endpoint or EndpointConfig()
        decoding = decoding or DecodingConfig()
        lm = default_lm_for(model.path) if decoding.lm is True else decoding.lm or None
        self.decoding = replace(decoding, lm=lm)
        self.lm = None
        if lm:
            from .lm import LanguageModel

            self.lm = LanguageModel(lm)
        self.lexicon = self.pronouncer = None
        if self.info.units == "phones":  # its words come from a pronunciation lexicon: the LM's words, or CMUdict's
            from .lexicon import lexicon_for
            from .phones import RUNTIME_ESPEAK_SECONDS, Pronouncer

            self.pronouncer = Pronouncer(timeout=RUNTIME_ESPEAK_SECONDS)
            self.lexicon = lexicon_for(self.vocab, self.lm.words if self.lm is not None and self.lm.words else None,
                                       self.pronouncer)
        # With a VadConfig, files skip long non-speech (transcribe) and streams also end a segment on VAD silence.
        if vad and self.sample_rate != VAD_RATE:
            raise ModelError(f"{model.path}: --vad needs a {VAD_RATE} Hz model (Silero VAD's rate)")
        self.vad = vad
        self.vad_model = VadModel() if vad else None

    @classmethod
    def load(cls, path: str | None = None, device: str = "auto", threads: int = 0,
             endpoint: EndpointConfig | None = None, decoding: DecodingConfig | None = None,
             lm=..., beam: BeamConfig | None = None, vad: VadConfig | None = None) -> "Recognizer":
        """lm: a language model file (ARPA, .npz or KenLM binary), True for the book LM (when built) when the model
        is the bundled one (DecodingConfig's default), or None/False for none; an LM implies beam search. beam: a
        BeamConfig asks for beam search with it. Given, both override `decoding`'s fields. vad: voice activity
        detection (needs the silero-vad wheel)."""
        path = path or default_model_path()
        if not os.path.exists(path):
            raise ModelError(f"{path}: model file not found")
        decoding = decoding or DecodingConfig()
        if lm is not ...:
            decoding = replace(decoding, lm=lm)
        if beam is not None:
            decoding = replace(decoding, beam=beam, beam_search=True)
        return cls(OnnxAcousticModel(path, device=device, threads=threads), endpoint, decoding, vad)

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
        if self.vad:
            from .vadskip import speech_finals

            yield from speech_finals(self, blocks)
            return
        stream = self.stream()
        for block in blocks:
            yield from (r for r in stream.accept(block) if r.final)
        yield from (r for r in stream.finish() if r.final)

    def step_streams(self, streams: Sequence["Stream"], audio: Sequence[np.ndarray | None] | None = None
                     ) -> list[list[Result] | None]:
        """Feed each stream its new audio (audio[i] samples, or None), then advance every stream that has a whole
        chunk ready by one chunk, all in one batched model call. Per stream: its results, or None when it had no
        chunk ready (it waits for more audio, or for finish())."""
        if audio is not None:
            for stream, samples in zip(streams, audio, strict=True):
                if samples is not None:
                    stream._push(samples)
        ready = [(k, feats) for k, feats in enumerate(s._take_chunks(1) for s in streams) if feats is not None]
        out: list[list[Result] | None] = [None] * len(streams)
        if ready:
            results = self._run([streams[k] for k, _ in ready], [feats for _, feats in ready])
            for (k, _), r in zip(ready, results):
                out[k] = r
        return out

    def _run(self, streams: list["Stream"], feats: list[np.ndarray], check_endpoint: bool = True
             ) -> list[list[Result]]:
        """One model call over the streams' features (all of one length): the single mechanism that advances a
        stream, alone or batched."""
        model = self.model
        log_probs, state = model.step(np.stack(feats), model.stack_states([s._state for s in streams]))
        return [s._apply(lp, st, check_endpoint) for s, lp, st in zip(streams, log_probs, model.unstack_states(state))]


class Stream:
    """Feed samples with accept(); get partial and final Results; finish() at the end of audio. Any split gives the
    same finals."""

    def __init__(self, recognizer: Recognizer, hotwords: dict[str, float] | None = None, lm: bool = True,
                 vad: bool = True):
        self.rec = recognizer
        info = recognizer.info
        self.frontend = FeatureExtractor(info.feature)
        self._state = recognizer.model.initial_state(1)
        self.decoder = make_decoder(recognizer.decoding, recognizer.vocab, recognizer.lm, hotwords, lm,
                                    recognizer.lexicon, recognizer.pronouncer)
        self._feats = np.zeros((0, info.feature.n_mels), np.float32)
        # A model with lookahead L emits step t's output with step t + L: its first L outputs belong to steps before
        # the audio began and are dropped, so decoder steps are audio steps (times need no shift) and finish()
        # flushes the last L with zero features, as the training side's offline forward does.
        self._skip = info.lookahead_steps
        self._segment_start_step = 0
        self._last_partial = ""
        self._samples = 0
        self._vad = VadClock(recognizer.vad_model, recognizer.vad) if vad and recognizer.vad else None

    @property
    def samples_seen(self) -> int:
        return self._samples

    @property
    def time(self) -> float:
        """Seconds of audio accepted so far."""
        return self._samples / self.rec.sample_rate

    @property
    def decoded_samples(self) -> int:
        """How many input samples the results so far account for (the rest waits for a full chunk)."""
        f = self.rec.info.feature
        steps = self.decoder.steps
        return steps * self.rec.info.stack * f.hop_length + (f.win_length - f.hop_length) if steps else 0

    @property
    def pending_seconds(self) -> float:
        """Seconds of accepted audio that the results do not account for yet."""
        return max(0, self._samples - self.decoded_samples) / self.rec.sample_rate

    def accept(self, samples: np.ndarray) -> list[Result]:
        """Feed samples; run the model on every complete chunk (in one call) and decode."""
        self._push(samples)
        feats = self._take_chunks()
        return self.rec._run([self], [feats])[0] if feats is not None else []

    def finish(self) -> list[Result]:
        """End of audio: decode what is buffered (the last step padded by repeating the last frame, then the
        lookahead flushed with zero features) and close the last segment."""
        results = []
        stack = self.rec.info.stack
        rest = self._take_chunks()
        if rest is not None:
            results += self.rec._run([self], [rest])[0]
        feats, self._feats = self._feats, self._feats[:0]
        if len(feats):
            feats = np.concatenate([feats, np.repeat(feats[-1:], (-len(feats)) % stack, axis=0)])
        lookahead = self.rec.info.lookahead_steps
        if lookahead and (len(feats) or self._skip < lookahead):  # audio reached the model: flush its delayed outputs
            feats = np.concatenate([feats, np.zeros((lookahead * stack, feats.shape[1]), np.float32)])
        if len(feats):
            results += self.rec._run([self], [feats], check_endpoint=False)[0]
        results = [r for r in results if r.final]
        final = self._close_segment()
        return results + ([final] if final else [])

    def _push(self, samples: np.ndarray) -> None:
        """Feed samples to the front-end only."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self._samples += len(samples)
        if self._vad:
            self._vad.push(samples)
        feats = self.frontend.accept(samples)
        if len(feats):
            self._feats = np.concatenate([self._feats, feats]) if len(self._feats) else feats

    def _take_chunks(self, max_chunks: int = 0) -> np.ndarray | None:
        """Remove and return up to max_chunks (0: all) complete chunks of features [T, F], or None."""
        n = len(self._feats) // self.rec.chunk_frames
        if max_chunks:
            n = min(n, max_chunks)
        if not n:
            return None
        chunk, self._feats = self._feats[: n * self.rec.chunk_frames], self._feats[n * self.rec.chunk_frames :]
        return chunk

    def _apply(self, log_probs: np.ndarray, state, check_endpoint: bool = True) -> list[Result]:
        """Take the model's output for the features last taken ([steps, V] and the next state); decode."""
        self._state = state
        results = []
        # Endpoints are checked per chunk, so where a segment closes does not depend on block sizes.
        step_chunk = self.rec.info.chunk_steps
        for i in range(0, len(log_probs), step_chunk):
            part = log_probs[i : i + step_chunk]
            if self._skip:
                drop = min(self._skip, len(part))
                part, self._skip = part[drop:], self._skip - drop
                if not len(part):
                    continue
            self.decoder.accept(part)
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
        trailing = (d.steps - 1 - last) * step
        if self._vad:  # read every chunk (its buffer stays small), at the decoder's position so that segments
            # do not depend on how far ahead the audio was pushed
            ready = has_speech and trailing >= VAD_MIN_BLANKS
            vad_silence = self._vad.silence_at(self.decoded_samples, needed=ready)
            if ready and vad_silence >= self.rec.vad.silence:
                return True
        return self.rec.endpoint.is_endpoint(has_speech, trailing, (d.steps - self._segment_start_step) * step)

    def _result(self, final: bool) -> Result:
        step = self.rec.info.step_seconds
        words = tokens_to_words(self.decoder.tokens, self.rec.vocab, step, self.decoder.word_texts)
        text = " ".join(w.text for w in words)
        start = words[0].start if words else round(self._segment_start_step * step, 3)
        end = words[-1].end if words else round(self.decoder.steps * step, 3)
        return Result(final, text, start, end, words)

    def _close_segment(self) -> Result | None:
        self.decoder.finalize()
        result = self._result(final=True) if self.decoder.tokens else None
        if result is not None and not result.text:
            result = None
        self.decoder.reset()
        self._segment_start_step = self.decoder.steps
        self._last_partial = ""
        return result
