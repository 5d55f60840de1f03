"""What voice activity detection (`--vad`, Silero VAD) buys and costs, on dev speech and real noise.

    python scripts/bench_vad.py [--every 4] [--snr 10] [--parts files,endpoint,cost] [--no-lm] [--json]

A subset of ../shared/data/dev.jsonl (every Nth utterance, both corpora), decoded greedily unless the book LM
is built (the decoding every command uses), one onnxruntime thread:

- files: each utterance alone, with and without --vad (WER on speech); then one file that is half non-speech
  (each utterance followed by as long a stretch of a real noise clip from ../shared/data/noise, or of near
  silence, in turn), transcribed from disk: wall time, WER, words inserted;
- endpointing: the utterances as one stream (2 s gaps) fed in 20 ms blocks as `asr live` and `asr serve` do,
  clean and with the noise clips mixed under everything at --snr dB: end of speech (the utterance's last
  sound above -35 dB of its peak) to the final that completes it, in audio seconds, and WER;
- cost: CPU seconds per audio second of one stream, with and without the VAD.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.audio import read_audio  # noqa: E402
from asr.endpoint import EndpointConfig  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import ErrorCounter  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.vad import VadConfig  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402

SR = 16000
DATA = Path(os.environ.get("DATA") or ROOT.parent / "shared" / "data")  # $DATA: the shared data folder


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def speech_end(x: np.ndarray) -> float:
    """Seconds to the end of the last 10 ms frame within 35 dB of the loudest."""
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    level = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(level > level.max() * 10 ** (-35 / 20))[0]
    return (loud[-1] + 1) * 0.01 if len(loud) else len(x) / SR


def noise_track(clips: list[np.ndarray], n: int, rng) -> np.ndarray:
    parts, have = [], 0
    while have < n:
        clip = clips[rng.integers(len(clips))]
        parts.append(clip / rms(clip))
        have += len(clip)
    return np.concatenate(parts)[:n].astype(np.float32)


def load(rec_kwargs: dict, vad: bool, silence: float | None = None, vad_silence: float | None = None) -> Recognizer:
    endpoint = EndpointConfig(silence_after_speech=silence) if silence else None
    config = VadConfig(silence=vad_silence) if vad_silence else VadConfig()
    return Recognizer.load(threads=1, endpoint=endpoint, vad=config if vad else None, **rec_kwargs)


def wer_of(refs, hyps) -> ErrorCounter:
    e = ErrorCounter()
    for r, h in zip(refs, hyps):
        e.add(normalize_text(r), normalize_text(h))
    return e


def bench_files(items, clips, rec_kwargs, rng) -> dict:
    out = {}
    for vad in (False, True):
        rec = load(rec_kwargs, vad)
        t0 = time.process_time()
        hyps = [" ".join(s.text for s in rec.transcribe(x)) for x, _ in items]
        out[f"speech_{'vad' if vad else 'plain'}"] = {"wer": wer_of([t for _, t in items], hyps).wer,
                                                     "cpu_s": time.process_time() - t0}
    # Half non-speech: utterance, then as long a stretch of noise (at the speech's level minus 6 dB) or of near
    # silence (-60 dBFS dither), alternately.
    parts = []
    for k, (x, _) in enumerate(items):
        gap = noise_track(clips, len(x), rng) * rms(x) * 0.5 if k % 2 == 0 else \
            (rng.standard_normal(len(x)) * 1e-3).astype(np.float32)
        parts += [x, gap]
    audio = np.concatenate(parts)
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "half.flac")
        sf.write(path, audio, SR)
        ref = " ".join(t for _, t in items)
        for vad in (False, True):
            rec = load(rec_kwargs, vad)
            walls, cpus = [], []
            for _ in range(2):  # CPU time is the fairer figure on a shared machine; wall time is what users wait
                t0, c0 = time.perf_counter(), time.process_time()
                segs = list(rec.transcribe(path))
                walls.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
            e = wer_of([ref], [" ".join(s.text for s in segs)])
            out[f"half_{'vad' if vad else 'plain'}"] = {
                "audio_s": len(audio) / SR, "wall_s": min(walls), "cpu_s": min(cpus),
                "rtf_cpu": min(cpus) / (len(audio) / SR), "wer": e.wer, "segments": len(segs)}
    return out


def stream_once(rec, audio: np.ndarray, block: int = 320):
    s = rec.stream()
    finals = []
    t0 = time.process_time()
    for i in range(0, len(audio), block):
        for r in s.accept(audio[i : i + block]):
            if r.final:
                finals.append((s.time, r))
    for r in s.finish():
        if r.final:
            finals.append((s.time, r))
    return finals, time.process_time() - t0


def bench_endpoint(items, clips, rec_kwargs, rng, snr: float | None) -> dict:
    gap = np.zeros(2 * SR, np.float32)
    parts, bounds, ends, t = [], [], [], 0.0
    for x, _ in items:
        parts += [x, gap]
        bounds.append(t)
        ends.append(t + speech_end(x))
        t += (len(x) + len(gap)) / SR
    audio = np.concatenate(parts)
    if snr is not None:
        level = np.mean([rms(x) for x, _ in items])
        audio = audio + noise_track(clips, len(audio), rng) * level * 10 ** (-snr / 20)
    else:
        audio = audio + (rng.standard_normal(len(audio)) * 1e-4).astype(np.float32)  # a quiet room, not zeros
    refs = [txt for _, txt in items]
    out = {}
    for name, vad, silence in (("ctc 1.0 s (default)", False, None), ("ctc 0.5 s", False, 0.5),
                               ("vad 0.5 s (default)", True, None), ("vad 0.3 s", True, 0.3)):
        rec = load(rec_kwargs, vad, silence if not vad else None, silence if vad else None)
        finals, cpu = stream_once(rec, audio)
        words = [[] for _ in items]
        done = [None] * len(items)
        segments = [0] * len(items)
        for emitted, r in finals:
            owners = set()
            for w in r.words:
                k = max(0, np.searchsorted(bounds, (w.start + w.end) / 2, side="right") - 1)
                words[k].append(w.text)
                owners.add(k)
            for k in owners:
                done[k] = emitted
                segments[k] += 1
        lat = [d - e for d, e in zip(done, ends) if d is not None]
        e = wer_of(refs, [" ".join(w) for w in words])
        out[name] = {"latency_median_s": float(np.median(lat)), "latency_p90_s": float(np.percentile(lat, 90)),
                     "wer": e.wer, "segments_per_utterance": float(np.mean(segments)),
                     "cpu_per_audio_s": cpu / (len(audio) / SR)}
    return out


def bench_cost(items, rec_kwargs, rounds: int = 3) -> dict:
    """CPU seconds per audio second of one stream (20 ms blocks), plain and with the VAD, alternated and the best
    of `rounds` taken, so that other load on the machine cancels out."""
    audio = np.concatenate([x for x, _ in items[:20]])
    recs = {"plain": load(rec_kwargs, False), "vad": load(rec_kwargs, True)}
    best = {k: float("inf") for k in recs}
    for _ in range(rounds):
        for k, rec in recs.items():
            best[k] = min(best[k], stream_once(rec, audio)[1] / (len(audio) / SR))
    vad = recs["vad"].vad_model.stream()
    c0 = time.process_time()
    for i in range(0, len(audio), 1920):  # what a stream does: one VAD call per 120 ms chunk
        vad.push(audio[i : i + 1920])
        vad.probs()
    return {**best, "vad_alone": (time.process_time() - c0) / (len(audio) / SR), "audio_s": len(audio) / SR}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--manifest", default=str(DATA / "dev.jsonl"))
    p.add_argument("--every", type=int, default=4, help="take every Nth utterance of the manifest")
    p.add_argument("--snr", type=float, default=10.0)
    p.add_argument("--parts", default="files,endpoint,cost", help="which measurements (comma-separated)")
    p.add_argument("--no-lm", action="store_true", help="greedy decoding even where the book LM is built")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    parts = set(args.parts.split(","))
    items = [(read_audio(it["audio"], SR), it["text"]) for it in read_manifest(args.manifest)[:: args.every]]
    clips = [read_audio(f, SR) for f in sorted(glob.glob(str(DATA / "noise" / "*.flac")))]
    rng = np.random.default_rng(0)
    lm = not args.no_lm and Recognizer.load(threads=1).lm is not None
    rec_kwargs = {} if lm else {"lm": None}
    report = {"utterances": len(items), "speech_s": sum(len(x) for x, _ in items) / SR,
              "decoding": "beam 32 + book LM" if lm else "greedy" + ("" if args.no_lm else " (book LM not built)")}
    if "files" in parts:
        report["files"] = bench_files(items, clips, rec_kwargs, rng)
    if "endpoint" in parts:
        report["endpoint_clean"] = bench_endpoint(items, clips, rec_kwargs, rng, None)
        report["endpoint_noisy"] = bench_endpoint(items, clips, rec_kwargs, rng, args.snr)
    if "cost" in parts:
        report["cost"] = bench_cost(items, rec_kwargs)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{report['utterances']} dev utterances, {report['speech_s'] / 60:.1f} min of speech, {report['decoding']}")
    if "files" in report:
        f = report["files"]
        print(f"speech alone: WER {f['speech_plain']['wer']:.2%} plain, {f['speech_vad']['wer']:.2%} --vad "
              f"(CPU {f['speech_plain']['cpu_s']:.1f} s, {f['speech_vad']['cpu_s']:.1f} s)")
        for k in ("half_plain", "half_vad"):
            h = f[k]
            print(f"{k}: {h['audio_s'] / 60:.1f} min file, CPU {h['cpu_s']:.2f} s (RTF {h['rtf_cpu']:.4f}), wall "
                  f"{h['wall_s']:.2f} s, WER {h['wer']:.2%}, {h['segments']} segments")
    if "cost" in report:
        c = report["cost"]
        print(f"one stream, CPU s per audio s: {c['plain']:.4f} plain, {c['vad']:.4f} with the VAD "
              f"(the VAD alone: {c['vad_alone']:.4f})")
    for part in [p for p in ("endpoint_clean", "endpoint_noisy") if p in report]:
        print(part + (f" (noise at {args.snr:g} dB SNR)" if part.endswith("noisy") else ""))
        for name, r in report[part].items():
            print(f"  {name:22s} end of speech to final: median {r['latency_median_s']:.2f} s, p90 "
                  f"{r['latency_p90_s']:.2f} s; WER {r['wer']:.2%}; {r['segments_per_utterance']:.2f} segments per "
                  f"utterance; CPU {r['cpu_per_audio_s']:.4f} s per audio s")


if __name__ == "__main__":
    main()
