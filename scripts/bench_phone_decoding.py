"""Decoding cost of a phone model against a character model: CPU seconds per audio second of the decoder
alone (log-probs computed once beforehand) and of the whole runtime (Recognizer.transcribe), over the given
audio (default: the bundled samples), one thread.

    python scripts/bench_phone_decoding.py --model phones.onnx [--model chars.onnx] [--lm LM] [AUDIO...]

A phone model always decodes with the lexicon beam (beam 8 without an LM, the configured beam with one); a
character model greedy without an LM. Also prints the time to build the phone lexicon (CMUdict, or the LM's
words), which every Recognizer pays once at load."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asr  # noqa: E402
from asr.audio import read_audio  # noqa: E402
from asr.decoders import make_decoder  # noqa: E402
from asr.recognizer import SAMPLES  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", action="append", required=True)
    p.add_argument("--lm", default=None)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("audio", nargs="*")
    args = p.parse_args()
    files = args.audio or sorted(str(f) for f in Path(SAMPLES).glob("*.wav"))
    for path in args.model:
        t0 = time.process_time()
        rec = asr.Recognizer.load(path, device="cpu", threads=1, lm=args.lm)
        load = time.process_time() - t0
        audio = [read_audio(f, rec.sample_rate) for f in files]
        seconds = sum(len(a) for a in audio) / rec.sample_rate * args.repeat
        log_probs = []
        for a in audio:  # the model's outputs, as the stream computes them
            feats = rec.stream().frontend.accept(a)
            n = len(feats) // rec.info.stack * rec.info.stack
            lp, _ = rec.model.step(feats[None, :n], rec.model.initial_state(1))
            log_probs.append(lp[0])
        t0 = time.process_time()
        for _ in range(args.repeat):
            for lp in log_probs:
                d = make_decoder(rec.decoding, rec.vocab, rec.lm, None, True, rec.lexicon, rec.pronouncer)
                d.accept(lp)
                d.finalize()
        decode = time.process_time() - t0
        t0 = time.process_time()
        for _ in range(args.repeat):
            for a in audio:
                list(rec.transcribe(a))
        whole = time.process_time() - t0
        kind = f"{rec.info.units}, " + (f"lexicon beam {type(d).__name__}" if rec.lexicon is not None
                                        else type(d).__name__)
        print(f"{Path(path).name} ({kind}{', LM' if rec.lm else ''}): load {load:.2f} CPU-s"
              + (f" (lexicon of {len(rec.lexicon)} pronunciations)" if rec.lexicon is not None else "")
              + f"; decoder {decode / seconds:.4f} CPU-s per audio-s; runtime RTF {whole / seconds:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
