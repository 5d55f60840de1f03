"""The live-captions page in a real browser against `asr transcribe` of the same audio: what the browser's audio path
(Chromium's fake microphone at its own rate -> the page's AudioWorklet resampler -> 16 kHz PCM16) changes.

    python scripts/bench_webpage.py [--model M] [--lm] [--screenshot docs/web-captions.png] [--json]

For each bundled sample (0.5 s of silence before, 2.5 s after) headless Chromium loads the page from `asr serve` on
loopback, its microphone plays the file, and the page's finals are compared with the recognizer's on the file:
word and character error rates against the transcript and against each other, segment times, and how long after a
segment's last word the final appeared. As a control, the same file resampled 16 -> 44.1 -> 16 kHz with soxr and
transcribed shows how much a good resampling round trip moves this model's output, and the file transcribed from
40, 80 and 120 samples in (starts between two 10 ms hops) how much the capture's arbitrary first sample does.
Greedy unless --lm.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from asr.metrics import edit_distance  # noqa: E402
from asr.recognizer import BUNDLED_MODEL, SAMPLES, Recognizer  # noqa: E402
from asr.serverprocess import ServerProcess  # noqa: E402
from chromium import CaptionsPage, launch, unavailable  # noqa: E402

LEAD, TAIL = 0.5, 2.5  # seconds of silence around each utterance
SHIFTS = (40, 80, 120)  # samples: starts between two 10 ms hops


def rate(ref: str, hyp: str, unit) -> float:
    ref_units = unit(ref)
    return edit_distance(ref_units, unit(hyp)) / max(1, len(ref_units))


def words(text: str) -> list[str]:
    return text.split()


def padded(path: Path, out: Path) -> float:
    audio, sr = sf.read(str(path), dtype="float32")
    audio = np.concatenate([np.zeros(int(LEAD * sr), np.float32), audio, np.zeros(int(TAIL * sr), np.float32)])
    sf.write(str(out), audio, sr, subtype="PCM_16")
    return len(audio) / sr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=BUNDLED_MODEL)
    ap.add_argument("--lm", action="store_true", help="decode with the server's default LM (greedy otherwise)")
    ap.add_argument("--screenshot", help="also play every sample in one go and save the page as this PNG")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if (why := unavailable()) is not None:
        print(f"bench_webpage: {why}", file=sys.stderr)
        return 2
    lm_args = [] if args.lm else ["--no-lm"]
    rec = Recognizer.load(args.model, device="cpu", threads=1, **({} if args.lm else {"lm": None}))
    server = ServerProcess(args.model, None, *lm_args)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for wav in sorted(Path(SAMPLES).glob("*.wav")):
                ref = wav.with_suffix(".txt").read_text().strip()
                mic = Path(tmp) / wav.name
                seconds = padded(wav, mic)
                audio, sr = sf.read(str(mic), dtype="float32")
                offline = [r for r in rec.transcribe(audio) if r.final]
                trip = soxr.resample(soxr.resample(audio, sr, 44100), 44100, sr).astype(np.float32)
                trip_text = " ".join(r.text for r in rec.transcribe(trip) if r.final)
                # The page starts capturing at no particular sample: a start that is not a multiple of the 10 ms
                # hop frames the audio differently, which is what moves this model's greedy output most.
                shifts = [" ".join(r.text for r in rec.transcribe(audio[k:]) if r.final) for k in SHIFTS]
                t0 = time.monotonic()
                driver = launch(str(mic))
                try:
                    launched = time.monotonic() - t0
                    page = CaptionsPage(driver, f"http://127.0.0.1:{server.port}/")
                    shown = page.listen(seconds)
                    browser_rate = driver.find_element("id", "rate").text
                finally:
                    driver.quit()
                page_text = " ".join(f["text"] for f in shown)
                file_text = " ".join(r.text for r in offline)
                lags = [captured - f["end"] for (_, captured, kind, _), f in
                        zip([e for e in page.events if e[2] == "final"], shown)]
                rows.append({
                    "sample": wav.name, "browser": browser_rate, "launch_s": round(launched, 2),
                    "segments_page": len(shown), "segments_file": len(offline),
                    "wer_page": rate(ref, page_text, words), "wer_file": rate(ref, file_text, words),
                    "wer_page_vs_file": rate(file_text, page_text, words),
                    "cer_page_vs_file": rate(file_text, page_text, list),
                    "wer_roundtrip_vs_file": rate(file_text, trip_text, words),
                    "cer_roundtrip_vs_file": rate(file_text, trip_text, list),
                    "cer_shifted_vs_file": max(rate(file_text, t, list) for t in shifts),
                    "wer_shifted_vs_file": max(rate(file_text, t, words) for t in shifts),
                    "wer_shifted": max(rate(ref, t, words) for t in shifts),
                    "page_late_s": [round(r.start - f["start"], 3) for f, r in zip(shown, offline)],
                    "final_after_last_word_s": lags,
                    "page": page_text, "file": file_text})
            if args.screenshot:
                screenshot(server, Path(tmp), Path(args.screenshot))
    finally:
        server.stop()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        print(f"{r['sample']}: {r['browser']}, segments page/file {r['segments_page']}/{r['segments_file']}, "
              f"WER page {r['wer_page']:.1%} file {r['wer_file']:.1%} shifted file at worst {r['wer_shifted']:.1%}, page vs file WER {r['wer_page_vs_file']:.1%} "
              f"CER {r['cer_page_vs_file']:.1%}, soxr round trip vs file WER {r['wer_roundtrip_vs_file']:.1%} "
              f"CER {r['cer_roundtrip_vs_file']:.1%}, sub-hop shifts vs file at worst WER {r['wer_shifted_vs_file']:.1%} "
              f"CER {r['cer_shifted_vs_file']:.1%}, page clock behind the file's by {r['page_late_s']} s, "
              f"final {', '.join(f'{x:.2f}' for x in r['final_after_last_word_s'])} s after the last word, "
              f"Chromium start {r['launch_s']:.1f} s")
        print(f"  page: {r['page']}\n  file: {r['file']}")
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    print(f"mean: WER page {mean('wer_page'):.1%}, file {mean('wer_file'):.1%}, shifted file at worst "
          f"{mean('wer_shifted'):.1%}; page vs file WER "
          f"{mean('wer_page_vs_file'):.1%}, CER {mean('cer_page_vs_file'):.1%}; soxr round trip vs file WER "
          f"{mean('wer_roundtrip_vs_file'):.1%}, CER {mean('cer_roundtrip_vs_file'):.1%}; sub-hop shifts vs file WER "
          f"{mean('wer_shifted_vs_file'):.1%}, CER {mean('cer_shifted_vs_file'):.1%}")
    return 0


def screenshot(server: ServerProcess, tmp: Path, out: Path) -> None:
    """Every sample in one go (1 s apart); the picture is taken while the last one is a partial line."""
    parts = []
    for wav in sorted(Path(SAMPLES).glob("*.wav")):
        audio, sr = sf.read(str(wav), dtype="float32")
        parts += [audio, np.zeros(int(1.5 * sr), np.float32)]
    mic = tmp / "all.wav"
    sf.write(str(mic), np.concatenate(parts[:-1]), sr, subtype="PCM_16")
    driver = launch(str(mic))
    try:
        page = CaptionsPage(driver, f"http://127.0.0.1:{server.port}/")
        page.click()
        page.wait(lambda: len(page.finals()) >= 2 and len(page.text("partial").split()) >= 6, 120,
                  "no partial after two finals")
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        print(f"screenshot: {out}", file=sys.stderr)
    finally:
        driver.quit()


if __name__ == "__main__":
    sys.exit(main())
