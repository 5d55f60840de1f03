"""How much a few milliseconds of leading silence change the transcript (issue: 2.5-10 ms changed the words).

    python scripts/shift_robustness.py MODEL.onnx MANIFEST.jsonl [--limit 60] [--pads-ms 2.5,5,10,20,30] [--lm FILE]

Each utterance is transcribed as it is and with each padding of silence in front; prints, per padding, the
word error rate of the padded transcripts against the unpadded ones (0 = identical) and against the reference.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import read_audio  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import ErrorCounter  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("manifest")
    p.add_argument("--limit", type=int, default=60)
    p.add_argument("--pads-ms", default="2.5,5,10,20,30")
    p.add_argument("--lm", default=None)
    args = p.parse_args()
    rec = Recognizer.load(args.model, device="cpu", threads=1, lm=args.lm)
    items = read_manifest(args.manifest)[: args.limit]
    pads = [float(x) for x in args.pads_ms.split(",")]
    to_plain = {pad: ErrorCounter() for pad in pads}
    to_ref = {pad: ErrorCounter() for pad in [0.0, *pads]}
    for item in items:
        audio = read_audio(item["audio"], rec.sample_rate)
        ref = normalize_text(item["text"])

        def text(pad_ms: float) -> str:
            x = np.concatenate([np.zeros(int(round(pad_ms * rec.sample_rate / 1000)), np.float32), audio])
            return normalize_text(" ".join(r.text for r in rec.transcribe(x)))

        plain = text(0.0)
        to_ref[0.0].add(ref, plain)
        for pad in pads:
            hyp = text(pad)
            to_plain[pad].add(plain, hyp)
            to_ref[pad].add(ref, hyp)
    for pad in [0.0, *pads]:
        row = {"pad_ms": pad, "wer_vs_reference": round(to_ref[pad].wer, 4)}
        if pad in to_plain:
            row["wer_vs_unpadded"] = round(to_plain[pad].wer, 4)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
