#!/usr/bin/env bash
# Model search at small scale: one lever changed at a time from recipes/search.toml (2 x 256 LSTM, 4 epochs,
# real training data only, one thread), then a table of the final epoch's dev figures (greedy) per variant.
# Resumable: rerun to continue; finished variants are skipped. Usage: recipes/search.sh [VARIANT...]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data}"
declare -A LEVERS=(
  [base]=""
  [no-speed-perturbation]="augment.speeds=[1.0]"
  [stack-2]="model.stack=2"
  [stack-4]="model.stack=4"
  [layers-3]="model.layers=3"
  [hidden-384]="model.hidden=384"
  [no-specaugment]="augment.freq_masks=0 augment.time_masks_per_second=0"
)
ORDER=(base stack-2 stack-4 layers-3 hidden-384 no-speed-perturbation no-specaugment)
for name in "${@:-${ORDER[@]}}"; do
  sets=()
  for kv in ${LEVERS[$name]}; do sets+=(--set "$kv"); done
  .venv/bin/asr train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --out "runs/search/$name" \
    --config recipes/search.toml --cache-dir runs/cache --resume "${sets[@]}" > "runs/search/$name.log" 2>&1
done
.venv/bin/python - "${ORDER[@]}" <<'PY' | tee runs/search/results.md
import csv, os, sys
print("| variant | dev WER | dev CER | dev loss | train audio-s/s |\n|---|---|---|---|---|")
for name in sys.argv[1:]:
    path = f"runs/search/{name}/metrics.csv"
    if os.path.exists(path):
        last = list(csv.DictReader(open(path)))[-1]
        print(f"| {name} (epoch {last['epoch']}) | {float(last['dev_wer']):.1%} | {float(last['dev_cer']):.1%} "
              f"| {float(last['dev_loss']):.1f} | {float(last['audio_per_second']):.0f} |")
PY
