"""Beam search speed and WER on cached CTC log-probs: CPU seconds of the decoder alone per audio second.

    python scripts/bench_beam.py DEV.jsonl [--beams 16,32,64,96] [--limit N] [--cache /tmp/dev-lp.npz]
        [--save ref.json | --check ref.json] [--profile 32]

The model runs once per utterance (the first call, one thread) and its log-probs are cached outside the repo,
so every later run times the decoder alone, on one process's CPU clock (the machine is shared: wall time would
time the neighbours). --save writes each utterance's text and tokens per beam; --check fails when any differs,
which is how a speed-up proves it changed no result.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.beam import BeamConfig, BeamDecoder  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import ErrorCounter  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402


def cached_log_probs(manifest: str, cache: str, limit: int) -> tuple[list[np.ndarray], list[str], list[float]]:
    """(log-probs, references, durations) of the manifest's first `limit` utterances (0: all)."""
    items = list(read_manifest(manifest))
    items = items[:limit] if limit else items
    refs = [normalize_text(i["text"]) for i in items]
    durations = [float(i["duration"]) for i in items]
    path = Path(cache)
    if path.exists():
        with np.load(path) as z:
            if len(z.files) >= len(items):
                return [z[f"u{n}"] for n in range(len(items))], refs, durations
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tune_lm import utterance_log_probs

    from asr.recognizer import Recognizer

    rec = Recognizer.load(None, device="cpu", threads=1, lm=None)
    lps = [lp for _, _, lp in utterance_log_probs(rec, manifest, limit)]
    np.savez(path, **{f"u{n}": lp for n, lp in enumerate(lps)})
    return lps, refs, durations


def decode_all(lps, cfg: BeamConfig, lm, vocab) -> tuple[list[dict], float]:
    """Each utterance's result and the CPU seconds the decoding took."""
    out, cpu = [], 0.0
    for lp in lps:
        t0 = time.process_time()
        d = BeamDecoder(vocab, cfg, lm)
        d.accept(lp)
        d.finalize()
        cpu += time.process_time() - t0
        out.append({"text": d.text, "tokens": [(t.id, t.step) for t in d.tokens]})
    return out, cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("manifest")
    p.add_argument("--beams", default="16,32,64,96")
    p.add_argument("--limit", type=int, default=0, help="first N utterances (0: all)")
    p.add_argument("--cache", default="/tmp/asr-dev-logprobs.npz")
    p.add_argument("--lm", default=str(Path.home() / ".cache/asr/en-books-4gram.npz"))
    p.add_argument("--lm-weight", type=float, default=BeamConfig.lm_weight)
    p.add_argument("--word-bonus", type=float, default=BeamConfig.word_bonus)
    p.add_argument("--repeat", type=int, default=1, help="decode each beam this often (the spread is the noise)")
    p.add_argument("--save", help="write the results per beam to this JSON file")
    p.add_argument("--check", help="fail when a result differs from this JSON file's")
    p.add_argument("--profile", type=int, default=0, help="cProfile one pass at this beam instead")
    args = p.parse_args()

    from asr.lm import LanguageModel
    from asr.vocab import Vocabulary

    lps, refs, durations = cached_log_probs(args.manifest, args.cache, args.limit)
    lm, vocab = LanguageModel(args.lm), Vocabulary()
    audio = sum(durations)

    def config(beam):
        return BeamConfig(beam=beam, lm_weight=args.lm_weight, word_bonus=args.word_bonus)

    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(decode_all, lps, config(args.profile), lm, vocab)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return 0
    expected = json.loads(Path(args.check).read_text()) if args.check else {}
    saved, failed = {}, False
    for beam in map(int, args.beams.split(",")):
        times = []
        for _ in range(args.repeat):
            results, cpu = decode_all(lps, config(beam), lm, vocab)
            times.append(cpu)
        errors = ErrorCounter()
        for ref, r in zip(refs, results):
            errors.add(ref, normalize_text(r["text"]))
        saved[str(beam)] = results
        line = {"beam": beam, "utterances": len(lps), "audio_s": round(audio, 1),
                "cpu_per_audio_s": [round(t / audio, 5) for t in times], "wer": round(errors.wer, 4)}
        if str(beam) in expected:
            ref_results = [{"text": r["text"], "tokens": [tuple(t) for t in r["tokens"]]} for r in expected[str(beam)]]
            texts = sum(a["text"] != b["text"] for a, b in zip(results, ref_results))
            tokens = sum(a["tokens"] != b["tokens"] for a, b in zip(results, ref_results))
            line.update(text_differs=texts, tokens_differ=tokens)
            failed |= bool(texts or tokens) or len(ref_results) != len(results)
        print(json.dumps(line), flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(saved))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
