"""`asr eval`: transcribe a manifest and score it (WER, CER, real-time factor), per corpus and overall."""

from __future__ import annotations

import sys
import time

from .audio import AudioError, read_audio
from .manifest import read_manifest
from .metrics import ErrorCounter
from .vocab import normalize_text


class NothingToScore(ValueError):
    """No utterance could be scored, so there is no error rate to report (0 % would be a lie)."""


def evaluate_manifest(recognizer, manifest: str, progress: bool = False) -> dict:
    items = read_manifest(manifest)
    if not items:
        raise NothingToScore(f"{manifest}: the manifest lists no utterances, so there is nothing to score")
    total, by_corpus = ErrorCounter(), {}
    audio_seconds = compute_seconds = 0.0
    failed = 0
    for n, item in enumerate(items, 1):
        try:
            samples = read_audio(item["audio"], recognizer.sample_rate)
        except AudioError as e:
            print(f"asr: {e}", file=sys.stderr)
            failed += 1
            continue
        t0 = time.perf_counter()
        hyp = " ".join(seg.text for seg in recognizer.transcribe(samples))
        compute_seconds += time.perf_counter() - t0
        audio_seconds += len(samples) / recognizer.sample_rate
        ref, hyp = normalize_text(item["text"]), normalize_text(hyp)
        total.add(ref, hyp)
        by_corpus.setdefault(item.get("corpus", "all"), ErrorCounter()).add(ref, hyp)
        if progress and sys.stderr.isatty():
            print(f"\r{n}/{len(items)} WER {total.wer:.2%}", end="", file=sys.stderr, flush=True)
    if progress and sys.stderr.isatty() and total.utterances:
        print(file=sys.stderr)
    if not total.utterances:
        raise NothingToScore(f"{manifest}: none of its {len(items)} utterances could be read, "
                             "so there is nothing to score")
    return {
        "wer": total.wer, "cer": total.cer, "rtf": compute_seconds / max(audio_seconds, 1e-9),
        "utterances": len(items) - failed, "failed": failed, "audio_seconds": audio_seconds,
        "words": total.words,
        "by_corpus": {c: {"wer": e.wer, "cer": e.cer, "utterances": e.utterances} for c, e in by_corpus.items()},
    }
