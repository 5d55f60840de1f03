"""File transcription benchmark: peak memory on a long file, and batch throughput.

    python scripts/bench_files.py long --hours 10 [--model M]         # one long FLAC: wall, RTF, peak RSS
    python scripts/bench_files.py batch MANIFEST [--jobs 2] [--model M]  # every manifest file: audio h per wall h

The long file is the bundled samples with pauses, repeated; it is written block by block to a
temporary FLAC. Each measurement runs `asr transcribe` as a child process and reads its peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.audio import read_audio  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.recognizer import SAMPLES  # noqa: E402


def asr_cmd() -> list[str]:
    exe = shutil.which("asr", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "asr.cli"]


def run_child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one `asr` child process."""
    t0 = time.monotonic()
    subprocess.run([*asr_cmd(), *args], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def long_file(args) -> dict:
    piece = np.concatenate([x for wav in sorted(Path(SAMPLES).glob("*.wav"))
                            for x in (read_audio(str(wav)), np.zeros(16000 * 2, np.float32))])
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "long.flac")
    repeats = int(args.hours * 3600 / (len(piece) / 16000)) + 1
    with sf.SoundFile(path, "w", 16000, 1, "PCM_16", format="FLAC") as f:
        for _ in range(repeats):
            f.write(piece)
    hours = repeats * len(piece) / 16000 / 3600
    extra = ["--model", args.model] if args.model else []
    wall, peak = run_child(["transcribe", path, "--format", "json", "--threads", str(args.threads), *extra])
    shutil.rmtree(tmp)
    return {"audio_hours": round(hours, 2), "wall_s": round(wall, 1), "rtf": round(wall / (hours * 3600), 4),
            "peak_rss_mb": round(peak, 1), "threads": args.threads}


def batch(args) -> dict:
    items = read_manifest(args.manifest)
    hours = sum(sf.info(i["audio"]).duration for i in items) / 3600
    out = tempfile.mkdtemp()
    extra = ["--model", args.model] if args.model else []
    wall, peak = run_child(["transcribe", *[i["audio"] for i in items], "--output-dir", out, "--format", "json",
                            "--jobs", str(args.jobs), *extra])
    shutil.rmtree(out)
    return {"files": len(items), "audio_hours": round(hours, 3), "wall_s": round(wall, 1), "jobs": args.jobs,
            "audio_hours_per_wall_hour": round(hours * 3600 / wall, 1), "peak_rss_mb_one_process": round(peak, 1)}


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    lo = sub.add_parser("long")
    lo.add_argument("--hours", type=float, default=10.0)
    lo.add_argument("--threads", type=int, default=1)
    lo.add_argument("--model")
    ba = sub.add_parser("batch")
    ba.add_argument("manifest")
    ba.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ba.add_argument("--model")
    args = p.parse_args()
    print(json.dumps(long_file(args) if args.what == "long" else batch(args)))


if __name__ == "__main__":
    main()
