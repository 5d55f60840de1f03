"""Hotword recall and false alarms at several bonuses; prints one JSON line per bonus.

    python scripts/hotword_eval.py MODEL LM HOT.jsonl DEV.jsonl [--bonuses 0,2,3,5,8] [--dev-limit 120]

HOT.jsonl: utterances that each speak one hotword (synthesise scripts/data/hotword_sentences.txt with
`asr synth`; the hotwords are scripts/data/hotwords.txt). Recall: the share of those utterances whose
transcript contains their hotword, with every hotword boosted. False alarms: hotwords in dev transcripts
(speech that never says them) decoded with every hotword boosted, per utterance; dev WER shows the cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.beam import BeamConfig, BeamDecoder  # noqa: E402
from asr.lm import LanguageModel  # noqa: E402
from asr.metrics import ErrorCounter  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402
from tune_lm import utterance_log_probs  # noqa: E402

HOTWORDS = Path(__file__).resolve().parent / "data" / "hotwords.txt"


def decode(rec, lm, lp, hotwords: dict[str, float]) -> str:
    d = BeamDecoder(rec.vocab, BeamConfig(hotwords=hotwords), lm)
    d.accept(lp)
    d.finalize()
    return normalize_text(d.text)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("lm")
    p.add_argument("hot_manifest")
    p.add_argument("dev_manifest")
    p.add_argument("--bonuses", default="0,2,3,4,5,6,8")
    p.add_argument("--dev-limit", type=int, default=120, help="dev utterances for false alarms (0: all)")
    args = p.parse_args()
    words = [w for w in HOTWORDS.read_text().split() if w]
    rec = Recognizer.load(args.model, device="cpu", lm=None)
    lm = LanguageModel(args.lm)
    hot = utterance_log_probs(rec, args.hot_manifest)
    dev = utterance_log_probs(rec, args.dev_manifest, args.dev_limit)
    print(json.dumps({"hotwords": len(words), "in_lm": sum(lm.is_word(w) for w in words),
                      "hot_utterances": len(hot), "dev_utterances": len(dev)}), flush=True)
    for bonus in map(float, args.bonuses.split(",")):
        boosts = {w: bonus for w in words} if bonus else {}
        hits, hot_errors = 0, ErrorCounter()
        for _, ref, lp in hot:
            hyp = decode(rec, lm, lp, boosts)
            target = next(w for w in words if w in ref.split())
            hits += target in hyp.split()
            hot_errors.add(ref, hyp)
        alarms, dev_errors = 0, ErrorCounter()
        for _, ref, lp in dev:
            hyp = decode(rec, lm, lp, boosts)
            alarms += sum(max(0, hyp.split().count(w) - ref.split().count(w)) for w in words)
            dev_errors.add(ref, hyp)
        print(json.dumps({"bonus": bonus, "recall": round(hits / len(hot), 3), "hot_wer": round(hot_errors.wer, 4),
                          "false_alarms_per_utt": round(alarms / len(dev), 4), "false_alarms": alarms,
                          "dev_wer": round(dev_errors.wer, 4)}), flush=True)


if __name__ == "__main__":
    main()
