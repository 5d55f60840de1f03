"""What the Vosk dialect's one-answer-per-block costs: a lockstep client (Vosk's example client) as fast as the
server answers, against `asr serve` on loopback.

    python scripts/bench_vosk.py [--model M] [--block 0.2] [--repeat 5]

Prints the per-block answer time (send to answer, median and 95th percentile, ms: a model round for the block
plus two loopback hops) and the real-time factor of the whole exchange, greedy (`asr serve --no-lm`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from websockets.sync.client import connect  # noqa: E402

from asr.audio import read_audio  # noqa: E402
from asr.client import pcm16  # noqa: E402
from asr.recognizer import BUNDLED_MODEL, SAMPLES  # noqa: E402
from asr.serverprocess import ServerProcess  # noqa: E402


def lockstep(url: str, audio, block: int) -> list[float]:
    waits = []
    with connect(url) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        for i in range(0, len(audio), block):
            t = time.perf_counter()
            ws.send(pcm16(audio[i : i + block]))
            ws.recv(timeout=60)
            waits.append(time.perf_counter() - t)
        ws.send('{"eof" : 1}')
        ws.recv(timeout=60)
    return waits


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=BUNDLED_MODEL)
    ap.add_argument("--block", type=float, default=0.2, help="seconds of audio per message (Vosk's client: 0.2)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    audio = [read_audio(str(p)) for p in sorted(Path(SAMPLES).glob("*.wav"))]
    seconds = sum(len(a) for a in audio) / 16000 * args.repeat
    server = ServerProcess(args.model, None, "--no-lm")
    try:
        waits, t = [], time.perf_counter()
        for _ in range(args.repeat):
            for a in audio:
                waits += lockstep(server.url + "/vosk", a, int(16000 * args.block))
        wall = time.perf_counter() - t
    finally:
        server.stop()
    waits.sort()
    print(json.dumps({"audio_s": round(seconds, 1), "block_s": args.block, "blocks": len(waits),
                      "answer_ms_median": round(1000 * statistics.median(waits), 1),
                      "answer_ms_p95": round(1000 * waits[int(0.95 * (len(waits) - 1))], 1),
                      "rtf": round(wall / seconds, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
