"""Batch transcription on Ray against local worker processes, on one machine.

    python scripts/bench_cluster.py [--manifest ../shared/data/dev.jsonl] [--limit N] [--jobs 2] [--repeat 3]
                                    [--address HOST:PORT]

Runs `asr transcribe --no-lm --output-dir` over the manifest's files (the dev set by default, else the bundled
samples) with `--jobs N` and with `--ray` (N actors on a head node this script starts with N CPUs, unless
--address names a running one), and prints files/s and the real-time factor of each. Ray's per-file overhead
is the slope of wall time over file count on tiny files (0.25 s each, 10 and then 210 of them), Ray's slope
less the local one; its fixed cost is what it adds to the whole command (connecting, starting the actors).
The two are measured in turns, --repeat times, and each figure is the fastest of its turns, so that a busy
machine's noise (other jobs taking the cores for a while) mostly drops out.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asr.manifest import read_manifest  # noqa: E402
from asr.recognizer import SAMPLES  # noqa: E402

DEV = ROOT.parent / "shared" / "data" / "dev.jsonl"


@contextmanager
def head(cpus: int):
    """A Ray head node with its own token and temporary folder, stopped (with all it started) on exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="asr-ray-", dir="/tmp")
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    ray = shutil.which("ray", path=os.path.dirname(sys.executable)) or "ray"
    log = open(os.path.join(temp, "start.log"), "w+")
    proc = subprocess.Popen([ray, "start", "--head", "--block", "--num-cpus", str(cpus), "--port", str(port),
                             "--temp-dir", temp, "--object-store-memory", str(100 << 20), "--include-dashboard",
                             "false", "--disable-usage-stats"], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    def said() -> str:
        log.seek(0)
        return log.read()

    try:
        while "Ray runtime started" not in said():
            if proc.poll() is not None:
                raise SystemExit("ray start failed:\n" + said())
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(temp, ignore_errors=True)


def transcribe(files: list[str], workers: list[str]) -> float:
    """Wall seconds of one `asr transcribe` of files into a fresh folder."""
    out = tempfile.mkdtemp()
    listing = os.path.join(out, "files")
    os.makedirs(listing)
    for i, f in enumerate(files):  # a folder of links: the command line stays short however many files
        os.symlink(os.path.abspath(f), os.path.join(listing, f"{i:05d}{Path(f).suffix}"))
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "asr.cli", "transcribe", listing, "--output-dir", os.path.join(out, "o"),
                    "--no-lm", *workers], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    wall = time.monotonic() - t0
    shutil.rmtree(out)
    return wall


def tiny_files(folder: str, count: int) -> list[str]:
    audio = sf.read(str(sorted(Path(SAMPLES).glob("*.wav"))[0]), dtype="float32")[0][:4000]
    paths = []
    for i in range(count):
        paths.append(os.path.join(folder, f"t{i}.wav"))
        sf.write(paths[-1], audio, 16000)
    return paths


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--manifest", default=str(DEV) if DEV.exists() else None)
    p.add_argument("--limit", type=int, default=0, help="only the first N files of the manifest")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--address", help="a running Ray cluster (default: start a head node here)")
    args = p.parse_args()
    if args.manifest:
        base = Path(args.manifest).parent
        files = [str(base / i["audio"]) if not os.path.isabs(i["audio"]) else i["audio"]
                 for i in read_manifest(args.manifest)]
    else:
        files = [str(w) for w in sorted(Path(SAMPLES).glob("*.wav"))]
    files = files[:args.limit or None]
    audio = sum(sf.info(f).duration for f in files)
    tmp = tempfile.mkdtemp()
    few, many = tiny_files(tmp, 10), tiny_files(tmp, 210)
    runs = {"local": {"wall": [], "few": [], "many": []}, "ray": {"wall": [], "few": [], "many": []}}

    def measure(address):
        kinds = {"local": ["--jobs", str(args.jobs)], "ray": ["--ray", address, "--jobs", str(args.jobs)]}
        for _ in range(args.repeat):
            for kind, workers in kinds.items():
                runs[kind]["wall"].append(transcribe(files, workers))
                runs[kind]["few"].append(transcribe(few, workers))
                runs[kind]["many"].append(transcribe(many, workers))

    if args.address:
        measure(args.address)
    else:
        with head(args.jobs) as address:
            measure(address)
    shutil.rmtree(tmp)
    results = {"files": len(files), "audio_h": round(audio / 3600, 3), "jobs": args.jobs, "cpus": os.cpu_count(),
               "repeat": args.repeat}
    for kind, r in runs.items():
        wall, few_wall, many_wall = min(r["wall"]), min(r["few"]), min(r["many"])
        results[kind] = {"wall_s": round(wall, 1), "all_walls_s": [round(w, 1) for w in r["wall"]],
                         "files_per_s": round(len(files) / wall, 2), "rtf": round(wall / audio, 4),
                         "audio_h_per_wall_h": round(audio / wall, 1), "tiny_10_s": round(few_wall, 2),
                         "tiny_210_s": round(many_wall, 2),
                         "per_file_ms": round((many_wall - few_wall) / 200 * 1000, 1)}
    results["ray_extra_per_file_ms"] = round(results["ray"]["per_file_ms"] - results["local"]["per_file_ms"], 1)
    results["ray_extra_fixed_s"] = round(results["ray"]["tiny_10_s"] - results["local"]["tiny_10_s"]
                                         - 10 * results["ray_extra_per_file_ms"] / 1000, 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
