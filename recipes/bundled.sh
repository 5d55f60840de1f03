#!/usr/bin/env bash
# Reproduces assets/en-lstm-ctc.onnx and assets/en-3gram.arpa from ../shared/data: train (stage 1, then a
# warm restart from its best epoch, stage 2), pick the better of stage 2's best epoch and the average of its
# last epochs on dev, export, evaluate through the runtime, export again with the figures; build the
# language model and tune its weights on dev.
# Rerun with the same arguments to resume after an interruption. Needs ./setup.sh --dev (kenlm).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data}"
RUN1="${RUN1:-runs/bundled}"
RUN="${RUN:-runs/stage2}"
OUT="${OUT:-assets/en-lstm-ctc.onnx}"
ASR=.venv/bin/asr

$ASR train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --out "$RUN1" --config recipes/bundled.toml \
  --cache-dir runs/cache --resume
$ASR train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --out "$RUN" --config recipes/bundled-stage2.toml \
  --set init="$RUN1/best.pt" --cache-dir runs/cache --resume

best=""; best_wer=2
for ck in "$RUN/averaged.pt" "$RUN/best.pt"; do
  [ -f "$ck" ] || continue
  $ASR export "$ck" -o "$RUN/candidate.onnx" >/dev/null
  $ASR eval "$DATA/dev.jsonl" --model "$RUN/candidate.onnx" --threads 1 --json > "$RUN/$(basename "$ck" .pt).dev.json"
  wer=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['wer'])" "$RUN/$(basename "$ck" .pt).dev.json")
  echo "$ck: dev WER $wer"
  if .venv/bin/python -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$wer" "$best_wer"; then
    best="$ck"; best_wer="$wer"
  fi
done
cp "$RUN/$(basename "$best" .pt).dev.json" "$RUN/shipped.dev.json"
$ASR export "$best" -o "$OUT" --accuracy "$RUN/shipped.dev.json"
echo "shipped $best (dev WER $best_wer) as $OUT"

# Language model: the sentence corpus plus the training transcripts (never dev text).
.venv/bin/python -c "import json,sys; [print(json.loads(l)['text']) for l in open(sys.argv[1])]" \
  "$DATA/train.jsonl" > "$RUN/train-text.txt"
$ASR lm build "$DATA/text/sentences.txt" "$RUN/train-text.txt" -o assets/en-3gram.arpa
.venv/bin/python scripts/tune_lm.py "$OUT" assets/en-3gram.arpa "$DATA/dev.jsonl" --weights 0.3,0.5,0.7 \
  --bonuses 2,3,4,5 | tee "$RUN/lm-tuning.jsonl"
