"""Live transcription benchmark on a real audio stack: latency, CPU and memory over a long run.

    python scripts/bench_live.py --minutes 60 [--model M] [--pulse] [--json]

With --pulse it starts its own PulseAudio daemon with a virtual null sink whose monitor is the
default source, and plays the bundled samples into it in a loop (speech, then 3 s of silence).
Without it, it listens to the default input as it is. It measures, in-process, exactly what
`asr live` runs (Microphone -> Stream):
- partial latency: from the capture callback receiving a block to the partial result that covers it;
- end-of-speech to final: from capturing the last word's audio to the final result;
- CPU use and resident memory, sampled every minute (memory should stay flat).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.bench import proc_status_mb  # noqa: E402
from asr.capture import Microphone  # noqa: E402
from asr.recognizer import SAMPLES, Recognizer  # noqa: E402


def start_pulse(tmp: str) -> dict:
    env = {**os.environ, "XDG_RUNTIME_DIR": tmp}
    subprocess.run(["pulseaudio", "-D", "-n", "--exit-idle-time=-1", "--load=module-native-protocol-unix",
                    "--load=module-null-sink sink_name=vsink rate=16000 channels=1"], env=env, check=True,
                   capture_output=True)
    subprocess.run(["pactl", "set-default-source", "vsink.monitor"], env=env, check=True)
    os.environ["XDG_RUNTIME_DIR"] = tmp
    return env


def player(env: dict, wav: str, stop: threading.Event) -> None:
    while not stop.is_set():
        subprocess.run(["paplay", "--device=vsink", wav], env=env, stderr=subprocess.DEVNULL)


def looped_sample(tmp: str) -> str:
    import soundfile as sf

    from asr.audio import read_audio

    parts = []
    for wav in sorted(Path(SAMPLES).glob("*.wav")):
        parts += [read_audio(str(wav)), np.zeros(16000 * 3, np.float32)]
    path = os.path.join(tmp, "loop.wav")
    sf.write(path, np.concatenate(parts), 16000)
    return path


def pct(values, q):
    return round(float(np.percentile(values, q)) * 1000, 1) if len(values) else None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--model")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--pulse", action="store_true", help="own PulseAudio with a virtual source playing samples")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-lm", action="store_true", help="greedy decoding instead of the bundled LM (the default)")
    p.add_argument("--vad", action="store_true", help="also close segments on Silero VAD silence (`asr live --vad`)")
    args = p.parse_args()

    tmp = tempfile.mkdtemp()
    stop = threading.Event()
    if args.pulse:
        env = start_pulse(tmp)
        threading.Thread(target=player, args=(env, looped_sample(tmp), stop), daemon=True).start()
    from asr.vad import VadConfig

    rec = Recognizer.load(args.model, device="cpu", threads=args.threads, lm=not args.no_lm,
                          vad=VadConfig() if args.vad else None)
    stream = rec.stream()
    ends: list[int] = []  # per captured block: the stream sample index where it ends
    captured: list[float] = []  # and when the callback received it
    last_covered = -1
    partial_lat, final_lat, samples_minutes = [], [], []
    t_start, cpu_start = time.monotonic(), time.process_time()
    next_sample, last_cpu, last_t = t_start + 60, cpu_start, t_start
    with Microphone(None, rec.sample_rate) as mic:
        for block in mic.blocks():
            ends.append(stream.samples_seen + len(block.samples))
            captured.append(block.captured_at)
            results = stream.accept(block.samples)
            now = time.monotonic()
            covered = bisect.bisect_right(ends, stream.decoded_samples) - 1
            if any(not r.final for r in results):  # every block this partial newly covers
                partial_lat += [now - captured[j] for j in range(last_covered + 1, covered + 1)]
            last_covered = covered
            for r in results:
                if r.final:  # the block holding the last word's end
                    i = bisect.bisect_left(ends, int(r.end * rec.sample_rate))
                    if i < len(ends):
                        final_lat.append(now - captured[i])
            if len(ends) > 6000:  # keep two minutes of history
                del ends[:3000], captured[:3000]
                last_covered -= 3000
            if now >= next_sample:
                cpu = time.process_time()
                samples_minutes.append({"minute": round((now - t_start) / 60, 1), "rss_mb": round(proc_status_mb("VmRSS"), 1),
                                        "cpu_percent": round(100 * (cpu - last_cpu) / (now - last_t), 2)})
                last_cpu, last_t, next_sample = cpu, now, now + 60
                if not args.json:
                    print(json.dumps(samples_minutes[-1]), flush=True)
            if now - t_start >= args.minutes * 60:
                break
        dropped, overflows = mic.dropped_seconds, mic.overflows
    stop.set()
    if args.pulse:
        subprocess.run(["pulseaudio", "--kill"], env={**os.environ, "XDG_RUNTIME_DIR": tmp})
    wall = time.monotonic() - t_start
    rss = [s["rss_mb"] for s in samples_minutes]
    report = {
        "minutes": round(wall / 60, 1), "model": rec.model.path, "threads": args.threads,
        "partial_latency_ms": {"median": pct(partial_lat, 50), "p95": pct(partial_lat, 95), "count": len(partial_lat)},
        "final_after_speech_ms": {"median": pct(final_lat, 50), "p95": pct(final_lat, 95), "count": len(final_lat),
                                  "includes_endpoint_silence_s": rec.vad.silence if rec.vad else
                                  rec.endpoint.silence_after_speech},
        "cpu_percent_of_one_core": round(100 * (time.process_time() - cpu_start) / wall, 2),
        "rss_mb": {"first_minute": rss[0] if rss else None, "last_minute": rss[-1] if rss else None,
                   "max": max(rss) if rss else None},
        "dropped_seconds": dropped, "input_overflows": overflows, "per_minute": samples_minutes,
    }
    print(json.dumps(report, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
