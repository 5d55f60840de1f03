#!/usr/bin/env bash
# Builds the book LM the bundled model decodes with (26 MB; about 5 min and 4.3 GB on one core) from the text
# corpora in ../shared/data (or $DATA), into $ASR_LM or ~/.cache/asr/en-books-4gram.npz, where asr looks for it.
# It is derived data, so it is built where it is used instead of being kept in the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data}
OUT=$(.venv/bin/python -c "from asr.recognizer import default_lm_path; print(default_lm_path())")
mkdir -p "$(dirname "$OUT")"
.venv/bin/asr lm build "$DATA/text/books/books.txt.xz" "$DATA/text/sentences.txt" "$DATA/train.jsonl@10" \
  --exclude "$DATA/dev.jsonl" --order 4 --vocab 50000 --max-ngrams 10000000 -o "$OUT"
