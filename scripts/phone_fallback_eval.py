"""How far phone targets reach: the training transcripts' words CMUdict lacks, and how close the fallback
(espeak-ng mapped to ARPAbet) comes to CMUdict on words it has, held out at random (phone error rate against
the nearest of their CMUdict pronunciations). Prints the figures README's phone section quotes.

Usage: python scripts/phone_fallback_eval.py [--manifest ../shared/data/train.jsonl] [--words 3000] [--seed 1]"""

import argparse
import collections
import random
import sys
import time

from asr import manifest
from asr.metrics import edit_distance
from asr.phones import Pronouncer, cmudict, espeak_pronunciations
from asr.vocab import normalize_text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--manifest", default="../shared/data/train.jsonl")
    p.add_argument("--words", type=int, default=3000, help="held-out CMUdict words the fallback pronounces")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    counts = collections.Counter()
    for d in manifest.read_manifest(args.manifest):
        text = normalize_text(d["text"], strict=True)
        counts.update((text or "").split())
    d = cmudict()
    missing = {w: n for w, n in counts.items() if w not in d}
    tokens = sum(counts.values())
    print(f"training words: {len(counts)} distinct, {tokens} running; not in CMUdict: {len(missing)} distinct "
          f"({len(missing) / len(counts):.2%}), {sum(missing.values())} running ({sum(missing.values()) / tokens:.2%})")
    print("most frequent missing:", ", ".join(f"{w} ({n})" for w, n in sorted(missing.items(), key=lambda kv: -kv[1])[:15]))
    t0 = time.perf_counter()
    guessed = Pronouncer().prepare(missing)
    print(f"fallback pronounced {len(guessed)} missing words in {time.perf_counter() - t0:.1f} s")

    rng = random.Random(args.seed)
    plain = [w for w in d if w.isalpha()]  # no abbreviations with dots or apostrophes: words as transcripts spell them
    held = rng.sample(plain, min(args.words, len(plain)))
    t0 = time.perf_counter()
    got = espeak_pronunciations(held)
    seconds = time.perf_counter() - t0
    edits = phones = exact = 0
    for w in held:
        hyp = got.get(w, ())
        best = min(d[w], key=lambda ref: edit_distance(ref, hyp) / len(ref))
        e = edit_distance(best, hyp)
        edits += e
        phones += len(best)
        exact += e == 0
    print(f"fallback against CMUdict on {len(held)} held-out words: phone error rate {edits / phones:.2%}, "
          f"word exactly right {exact / len(held):.2%}, {len(held) / seconds:.0f} words/s")


if __name__ == "__main__":
    sys.exit(main())
