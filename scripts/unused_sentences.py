"""The sentences of a text corpus that earlier synthetic corpora did not read, for a new one (printed in order).

    python scripts/unused_sentences.py SENTENCES.txt [--plan SEED:COUNT ...] [--exclude FILE ...] > unused.txt

--plan SEED:COUNT leaves out the sentences `asr synth SENTENCES --seed SEED --utterances COUNT` reads (its plan
depends only on the seed and the sentence list, not on the voices); --exclude leaves out the texts of a manifest
(.jsonl) or a text file (a sentence a line). Recipe use: the Kokoro corpus of stage 16 reads sentences that
neither Debian-voice corpus (seeds 1 and 2) read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asr.manifest import read_manifest  # noqa: E402
from asr.vocab import normalize_text  # noqa: E402
from training.synth import Voice, plan, read_sentences  # noqa: E402


def planned(sentences: list[str], seed: int, count: int) -> set[str]:
    anyone = Voice("any", lambda: True, lambda txt, wav: [])
    return {job.text for job in plan(sentences, [anyone], count, seed, (1.0, 1.0), 0)}


def texts(path: str) -> set[str]:
    if path.endswith(".jsonl"):
        return {normalize_text(item["text"]) for item in read_manifest(path)}
    with open(path, encoding="utf-8") as f:
        return {normalize_text(line) for line in f if line.strip()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sentences")
    p.add_argument("--plan", action="append", default=[], metavar="SEED:COUNT")
    p.add_argument("--exclude", action="append", default=[], metavar="FILE")
    args = p.parse_args()
    sentences = read_sentences(args.sentences)
    used: set[str] = set()
    for item in args.plan:
        try:
            seed, count = (int(x) for x in item.split(":"))
        except ValueError:
            sys.exit(f"unused_sentences: --plan {item!r} is not SEED:COUNT")
        used |= planned(sentences, seed, count)
    for path in args.exclude:
        try:
            used |= texts(path)
        except (OSError, ValueError) as e:
            sys.exit(f"unused_sentences: {path}: {e}")
    kept = [s for s in sentences if s not in used]
    sys.stdout.write("".join(s + "\n" for s in kept))
    print(f"{len(kept)} of {len(sentences)} sentences unused", file=sys.stderr)


if __name__ == "__main__":
    main()
