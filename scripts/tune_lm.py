"""Tune beam-search LM weight and word bonus on a dev manifest; prints WER/CER for each setting (JSON lines).

    python scripts/tune_lm.py MODEL.onnx LM.arpa DEV.jsonl [--weights 0.3,0.5,0.8] [--bonuses 0,1,2] [--beams 16] [--jobs 2] [--open-vocabulary]

Log-probs are computed once per utterance, then every setting is decoded from them.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.audio import read_audio  # noqa: E402
from asr.beam import BeamConfig, BeamDecoder  # noqa: E402
from asr.manifest import read_manifest  # noqa: E402
from asr.metrics import ErrorCounter  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402

_data = {}


def _init(lm_path, items, vocab, lexicon):
    from asr.lm import LanguageModel

    _data.update(lm=LanguageModel(lm_path) if lm_path else None, items=items, vocab=vocab, lexicon=lexicon)


def _score(setting):
    weight, bonus, beam = setting
    per_corpus = {}
    for corpus, ref, lp in _data["items"]:
        cfg = BeamConfig(beam=beam, lm_weight=weight, word_bonus=bonus, lexicon=_data["lexicon"])
        d = BeamDecoder(_data["vocab"], cfg, _data["lm"])
        d.accept(lp)
        d.finalize()
        per_corpus.setdefault(corpus, ErrorCounter()).add(ref, normalize_text(d.text))
    total = ErrorCounter()
    for e in per_corpus.values():
        for k in ("word_edits", "words", "char_edits", "chars"):
            setattr(total, k, getattr(total, k) + getattr(e, k))
    return {"lm_weight": weight, "word_bonus": bonus, "beam": beam, "wer": round(total.wer, 4), "cer": round(total.cer, 4),
            "by_corpus": {c: {"wer": round(e.wer, 4), "cer": round(e.cer, 4)} for c, e in per_corpus.items()}}


def utterance_log_probs(rec, manifest: str, limit: int = 0) -> list[tuple[str, str, np.ndarray]]:
    """(corpus, normalised reference, CTC log-probs) per utterance: the model runs once, decoders many times."""
    items = []
    for item in read_manifest(manifest):
        if limit and len(items) >= limit:
            break
        feats = rec.stream().frontend.accept(read_audio(item["audio"]))
        feats = feats[: len(feats) // rec.info.stack * rec.info.stack]
        late = rec.info.lookahead_steps  # flushed as the runtime does: zero features, the first outputs dropped
        feats = np.concatenate([feats, np.zeros((late * rec.info.stack, feats.shape[1]), np.float32)])
        lp, _ = rec.model.step(feats[None], rec.model.initial_state())
        items.append((item.get("corpus", "all"), normalize_text(item["text"]), lp[0][late:]))
    return items


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("lm", help="ARPA/KenLM file, or '' for beam search without LM")
    p.add_argument("manifest")
    p.add_argument("--weights", default="0.3,0.5,0.7,0.9")
    p.add_argument("--bonuses", default="0,1,2,3")
    p.add_argument("--beams", default=str(BeamConfig.beam))
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--open-vocabulary", action="store_true", help="let the beam spell words the LM does not list")
    args = p.parse_args()
    rec = Recognizer.load(args.model, device="cpu", lm=None)
    items = utterance_log_probs(rec, args.manifest)
    settings = list(itertools.product(map(float, args.weights.split(",")), map(float, args.bonuses.split(",")),
                                      map(int, args.beams.split(","))))
    init_args = (args.lm, items, rec.vocab, not args.open_vocabulary)
    with ProcessPoolExecutor(args.jobs, initializer=_init, initargs=init_args) as pool:
        for result in pool.map(_score, settings):
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
