"""`asr bench`: speed, latency and memory on the same audio, with pocketsphinx as a reference point.

- Single stream (each engine in a fresh subprocess, so load time and peak memory are its own): model load time,
  time to first result, real-time factor (onnxruntime with 1 thread; 20 ms blocks; best of 3 passes), peak RSS,
  and WER when the audio is the bundled samples (which come with transcripts).
- Server throughput: `asr serve` as a subprocess on 127.0.0.1, then 1, 2, 4, ... concurrent real-time clients
  (20 ms blocks, starts spread over one second) until p95 partial latency exceeds the bound or the audio falls
  behind; the last level that held is the number of real-time streams the server sustains. Partial latency is
  measured by the client: from sending the audio up to a partial's end to receiving that partial.
Everything is loopback only and bounded in count and time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .capture import BLOCK_SECONDS, RATE
from .recognizer import SAMPLES, default_model_path
from .serverprocess import ServerProcess, proc_status_mb

BLOCK = int(RATE * BLOCK_SECONDS)
PASSES = 3
MAX_THROUGHPUT_SECONDS = 420.0  # no new load level starts after this long


# ---- single stream, in a subprocess ----------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    try:
        return proc_status_mb("VmHWM")
    except (OSError, StopIteration):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _single(engine: str, model: str | None, items: list[tuple[str, str | None]], lm: bool = True) -> dict:
    """items: (wav path, reference text or None). Runs in its own process."""
    from .audio import read_audio
    from .metrics import ErrorCounter
    from .vocab import normalize_text

    audios = [read_audio(path, RATE) for path, _ in items]
    base_rss = _peak_rss_mb()
    t0 = time.perf_counter()
    if engine == "asr":
        from .recognizer import Recognizer

        rec = Recognizer.load(model, device="cpu", threads=1, lm=lm)
        load_s = time.perf_counter() - t0

        def run(audio, first=None):
            stream, finals = rec.stream(), []
            for i in range(0, len(audio), BLOCK):
                for r in stream.accept(audio[i : i + BLOCK]):
                    if first is not None and not first and r.text:
                        first.append((time.perf_counter(), (i + BLOCK) / RATE))
                    if r.final:
                        finals.append(r.text)
            finals += [r.text for r in stream.finish() if r.final]
            return " ".join(finals)
    else:
        from pocketsphinx import Decoder

        decoder = Decoder(samprate=RATE)
        load_s = time.perf_counter() - t0

        def run(audio, first=None):
            from .client import pcm16

            pcm = pcm16(audio)
            decoder.start_utt()
            for i in range(0, len(audio), BLOCK):
                decoder.process_raw(pcm[2 * i : 2 * (i + BLOCK)], False, False)
                if first is not None and not first:
                    hyp = decoder.hyp()
                    if hyp is not None and hyp.hypstr.strip():
                        first.append((time.perf_counter(), (i + BLOCK) / RATE))
            decoder.end_utt()
            hyp = decoder.hyp()
            return hyp.hypstr if hyp is not None else ""

    first: list = []
    texts = [run(audios[0], first)]
    first_result_s = first[0][0] - t0 if first else None
    first_result_audio_s = first[0][1] if first else None
    texts += [run(a) for a in audios[1:]]
    seconds = sum(len(a) for a in audios) / RATE
    best = float("inf")
    for _ in range(PASSES):
        t = time.perf_counter()
        for a in audios:
            run(a)
        best = min(best, time.perf_counter() - t)
    out = {"engine": engine, "load_s": round(load_s, 3), "first_result_s": _r(first_result_s, 3),
           "first_result_audio_s": first_result_audio_s, "rtf": round(best / seconds, 4),
           "audio_seconds": round(seconds, 2), "peak_rss_mb": round(_peak_rss_mb(), 1),
           "rss_before_load_mb": round(base_rss, 1)}
    if all(ref is not None for _, ref in items):
        errors = ErrorCounter()
        for (_, ref), hyp in zip(items, texts):
            errors.add(normalize_text(ref), normalize_text(hyp))
        out["wer"] = round(errors.wer, 4)
    return out


def _r(x, digits):
    return None if x is None else round(x, digits)


def _run_single(engine: str, model: str | None, items, lm: bool = True, timeout: float = 600) -> dict:
    spec = json.dumps({"engine": engine, "model": model, "items": items, "lm": lm})
    r = subprocess.run([sys.executable, "-m", "asr.bench", "--single", spec], capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{engine} single-stream run failed: {r.stderr.strip().splitlines()[-1:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---- server throughput -----------------------------------------------------------------------------------------
def _level(server: ServerProcess, audio: np.ndarray, n: int, bound: float) -> dict:
    from .client import stream_samples

    rng = random.Random(n)
    offsets = sorted(rng.uniform(0, 1.0) for _ in range(n))

    async def client(offset):
        await asyncio.sleep(offset)
        return await stream_samples(server.url, audio, realtime=True, open_timeout=30)

    async def main():
        return await asyncio.gather(*(client(o) for o in offsets))

    before = server.health()
    cpu0, own0, t0 = server.cpu_seconds(), time.process_time(), time.monotonic()
    reports = asyncio.run(main())
    wall = time.monotonic() - t0
    after = server.health()
    lat = [x for r in reports for x in r.latencies]
    errors = [r.error for r in reports if r.error]
    eof_waits = [r.eof_wait_s for r in reports if r.eof_wait_s is not None]
    calls = after["model_calls"] - before["model_calls"]
    level = {"streams": n, "partials": len(lat),
             "latency_ms": {"median": _ms(lat, 50), "p95": _ms(lat, 95), "max": _ms(lat, 100)},
             "max_send_lag_s": round(max(r.send_lag_s for r in reports), 3),
             "max_eof_wait_s": round(max(eof_waits), 3) if eof_waits else None,
             "server_cpu_percent": round(100 * (server.cpu_seconds() - cpu0) / wall, 1),
             "client_cpu_percent": round(100 * (time.process_time() - own0) / wall, 1),
             "mean_batch": round((after["chunks"] - before["chunks"]) / calls, 2) if calls else None,
             "errors": errors[:3]}
    behind = (level["max_send_lag_s"] > 0.5 or level["max_eof_wait_s"] is None or level["max_eof_wait_s"] > 1.0)
    level["ok"] = bool(not errors and lat and np.percentile(lat, 95) <= bound and not behind)
    return level


def _ms(values, q):
    return round(float(np.percentile(values, q)) * 1000, 1) if len(values) else None


def _throughput(args, audio: np.ndarray, log) -> dict:
    server = ServerProcess(args.model or default_model_path(), None, "--max-clients", args.streams_max + 8,
                           "--idle-timeout", 120, *(["--no-lm"] if args.no_lm else []), device=args.device,
                           threads=args.server_threads)
    try:
        idle_rss = server.status("VmRSS")
        levels, n, best, worst, refinements = [], 1, 0, None, 0
        deadline = time.monotonic() + MAX_THROUGHPUT_SECONDS
        candidates = []
        while n <= args.streams_max:
            candidates.append(n)
            n *= 2
        if candidates[-1] != args.streams_max:
            candidates.append(args.streams_max)
        queue = list(candidates)
        while queue and time.monotonic() < deadline:
            n = queue.pop(0)
            level = _level(server, audio, n, args.latency_bound)
            levels.append(level)
            log(_level_line(level))
            if level["ok"]:
                best = max(best, n)
            else:
                worst = n if worst is None else min(worst, n)
                queue = []
            if worst is not None and not queue and worst - best > max(1, best // 4) and refinements < 2:
                queue = [(best + worst) // 2]  # refine between the last level that held and the first that did not
                refinements += 1
        peak = server.status("VmHWM")
        h = server.health()
    finally:
        code = server.stop(timeout=60)
    return {"sustained_streams": best, "first_failing_streams": worst, "levels": levels,
            "server_start_s": round(server.start_s, 2), "server_idle_rss_mb": round(idle_rss, 1),
            "server_peak_rss_mb": round(peak, 1), "server_exit_code": code, "providers": h["providers"],
            "latency_bound_ms": args.latency_bound * 1000, "level_seconds": round(len(audio) / RATE, 2)}


def _level_line(lv: dict) -> str:
    lat = lv["latency_ms"]
    return (f"  {lv['streams']:4d} streams: partial latency median {lat['median']} ms, p95 {lat['p95']} ms; "
            f"eof wait {lv['max_eof_wait_s']} s; send lag {lv['max_send_lag_s']} s; server CPU "
            f"{lv['server_cpu_percent']}%, clients' CPU {lv['client_cpu_percent']}%; mean batch {lv['mean_batch']}"
            f"{'' if lv['ok'] else '  -> not sustained' + (' (' + lv['errors'][0] + ')' if lv['errors'] else '')}")


# ---- the command -----------------------------------------------------------------------------------------------
def run_bench(args) -> int:
    import importlib.util

    import soundfile as sf

    from .audio import read_audio

    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    if args.audio:
        items = [(args.audio, None)]
        audio = read_audio(args.audio, RATE)
        audio_name = args.audio
    else:
        wavs = sorted(Path(SAMPLES).glob("*.wav"))
        items = [(str(w), w.with_suffix(".txt").read_text().strip()) for w in wavs]
        audio = np.concatenate([read_audio(str(w), RATE) for w in wavs])
        audio_name = f"the {len(wavs)} bundled samples concatenated"
    report = {"audio": audio_name, "audio_seconds": round(len(audio) / RATE, 2), "cpu_count": os.cpu_count(),
              "model": args.model or "bundled", "lm": not args.no_lm}
    with tempfile.TemporaryDirectory() as tmp:
        if args.audio:  # decode once; both engines read the same 16 kHz file
            path = os.path.join(tmp, "audio.wav")
            sf.write(path, audio, RATE, subtype="PCM_16")
            items = [(path, None)]
        log(f"asr bench: {report['audio']} ({report['audio_seconds']} s), {os.cpu_count()} CPUs")
        log("single stream (fresh process each, onnxruntime threads=1, 20 ms blocks, best of 3 passes)...")
        report["asr"] = _run_single("asr", args.model, items, lm=not args.no_lm)
        log("  asr: " + _single_line(report["asr"]))
        if importlib.util.find_spec("pocketsphinx") is None:
            report["pocketsphinx"] = None
            log("  pocketsphinx: not installed (pip install pocketsphinx) - comparison skipped")
        else:
            report["pocketsphinx"] = _run_single("pocketsphinx", None, items)
            log("  pocketsphinx: " + _single_line(report["pocketsphinx"]))
            a, p = report["asr"], report["pocketsphinx"]
            report["ratios_asr_over_pocketsphinx"] = {
                k: round(a[k] / p[k], 3) for k in ("rtf", "load_s", "first_result_s", "peak_rss_mb")
                if a.get(k) and p.get(k)}
            log("  ratios asr / pocketsphinx: " + ", ".join(f"{k} {v}x" for k, v in
                                                           report["ratios_asr_over_pocketsphinx"].items()))
    level_audio = audio
    need = int(args.level_seconds * RATE)
    if len(level_audio) < need:
        level_audio = np.tile(level_audio, need // len(level_audio) + 1)
    level_audio = level_audio[:need]
    log(f"server throughput (127.0.0.1, batched, {args.level_seconds:g} s real-time streams, "
        f"bound p95 partial latency {args.latency_bound * 1000:g} ms)...")
    report["server"] = t = _throughput(args, level_audio, log)
    one = t["levels"][0]
    log(f"  sustained: {t['sustained_streams']} real-time streams"
        + (f" (first failing level: {t['first_failing_streams']})" if t["first_failing_streams"] else
           f" (every level up to --streams-max {args.streams_max} held)"))
    log(f"  partial latency, 1 stream: median {one['latency_ms']['median']} ms, p95 {one['latency_ms']['p95']} ms")
    log(f"  server: start (import + load) {t['server_start_s']} s, RSS idle {t['server_idle_rss_mb']} MB, "
        f"peak {t['server_peak_rss_mb']} MB")
    if args.json:
        print(json.dumps(report))
    return 0


def _single_line(d: dict) -> str:
    wer = f", WER {d['wer']:.1%}" if "wer" in d else ""
    return (f"RTF {d['rtf']}, load {d['load_s']} s, first result {d['first_result_s']} s "
            f"(at {d['first_result_audio_s']} s of audio), peak RSS {d['peak_rss_mb']} MB{wer}")


def _single_main(argv: list[str]) -> int:
    spec = json.loads(argv[argv.index("--single") + 1])
    print(json.dumps(_single(spec["engine"], spec["model"], [tuple(i) for i in spec["items"]], spec["lm"])))
    return 0


if __name__ == "__main__":
    sys.exit(_single_main(sys.argv))
