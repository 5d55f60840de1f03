"""`asr transcribe --vad`: decode only the stretches of a file that the VAD hears speech in.

Audio goes through the VAD as it is read (memory stays flat however long the file). Speech opens a fresh
Stream with `pad` seconds of the audio before it; the stream is finished once the VAD has heard `skip`
seconds of non-speech, and what follows is not decoded until speech returns. Shorter pauses stay inside
one stream, so the acoustic model keeps its context across them. Times are the file's own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from .results import Result, Word
from .vad import FRAME, SpeechState


def speech_finals(rec, blocks: Iterable[np.ndarray]) -> Iterator[Result]:
    from .recognizer import Stream

    cfg, sr = rec.vad, rec.sample_rate
    vad, state = rec.vad_model.stream(), SpeechState(cfg)
    pad = round(cfg.pad * sr)
    # A stream starts on the file's grid of model steps (hop x stack samples), so it sees the same feature frames
    # the whole file would: this model's output depends on that phase (see the shift-robustness note).
    grid = rec.info.stack * rec.info.feature.hop_length
    preroll: deque[np.ndarray] = deque(maxlen=math.ceil(pad / FRAME) + math.ceil(grid / FRAME))
    close_after = math.ceil(cfg.skip * sr / FRAME)
    stream, offset, feed, frame_no = None, 0.0, [], 0
    tail = np.zeros(0, np.float32)

    def flush() -> Iterator[Result]:
        if feed:
            yield from _shifted(stream.accept(np.concatenate(feed)), offset)
            feed.clear()

    for block in blocks:
        block = np.asarray(block, np.float32).reshape(-1)
        vad.push(block)
        samples = np.concatenate([tail, block]) if len(tail) else block
        probs = vad.probs()
        n = len(probs)
        tail = samples[n * FRAME :]
        for frame, p in zip(samples[: n * FRAME].reshape(n, FRAME), probs):
            speech = state.update(float(p))
            if stream is None:
                if speech:
                    here, have = frame_no * FRAME, (frame_no - len(preroll)) * FRAME
                    start = max(here - pad, have) // grid * grid
                    start += grid if start < have else 0
                    offset = start / sr
                    stream = Stream(rec, vad=False)
                    feed.append(np.concatenate([*preroll, frame])[start - have :])
            else:
                feed.append(frame)
                if state.silent_frames >= close_after:
                    yield from flush()
                    yield from _shifted(stream.finish(), offset)
                    stream = None
            preroll.append(frame)  # kept while a stream runs too: a stream may open just after one closes
            frame_no += 1
        if stream is not None:
            yield from flush()
    if stream is not None:
        feed.append(tail)
        yield from flush()
        yield from _shifted(stream.finish(), offset)


def _shifted(results: list[Result], offset: float) -> Iterator[Result]:
    for r in results:
        if r.final:
            yield Result(True, r.text, round(r.start + offset, 3), round(r.end + offset, 3),
                         [Word(w.text, round(w.start + offset, 3), round(w.end + offset, 3), w.confidence)
                          for w in r.words])
