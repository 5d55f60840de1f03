#!/usr/bin/env bash
# Issue 17's levers at small scale, each changed alone from the base recipes/search.toml (2 x 256 LSTM, 4 epochs,
# real training data, one thread, the same seed): characters (the control), phones (recipes/search-phones.toml),
# characters with an auxiliary phone-CTC head, 60 ms lookahead from scratch, streaming normalisation (running
# mean; running mean and variance), noise + room reverberation. Each is exported and scored through the runtime
# with the book LM and lexicon (what users get), LibriSpeech and AN4 apart, with its training speed and runtime
# RTF (one thread). Resumable: rerun to continue; finished steps are skipped. Needs the book LM (scripts/build_lm.sh).
#   recipes/search-levers.sh [VARIANT...]        # default: all, in the order below
#   SETS="epochs=1 max_steps_per_epoch=3" ...    # extra --set overrides for every variant (a smoke test)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${DATA:-../shared/data}"
PY="${PY:-.venv/bin/python}"
OUT="${OUT:-runs/search-levers}"
LM="${LM:-${ASR_LM:-${XDG_CACHE_HOME:-$HOME/.cache}/asr/en-books-4gram.npz}}"
[ -f "$LM" ] || { echo "search-levers.sh: no book LM at $LM: build it with scripts/build_lm.sh" >&2; exit 2; }
ORDER=(chars phones aux-phones lookahead-2 norm-3s norm-var-3s noise-rir)
declare -A CONFIG=([phones]=recipes/search-phones.toml)
declare -A LEVER=([aux-phones]="aux_phone_weight=0.3" [lookahead-2]="model.lookahead=2" [norm-3s]="norm_seconds=3.0"
  [norm-var-3s]="norm_seconds=3.0 norm_variance=true"
  [noise-rir]="augment.noise_dir=$DATA/noise augment.noise_prob=0.3 augment.rir_dir=$DATA/rir augment.rir_prob=0.3")
mkdir -p "$OUT"
for name in "${@:-${ORDER[@]}}"; do
  sets=()
  for kv in ${LEVER[$name]:-} ${SETS:-}; do sets+=(--set "$kv"); done
  if [ ! -f "$OUT/$name.onnx" ]; then
    "$PY" -m asr.cli train --train "$DATA/train.jsonl" --dev "$DATA/dev.jsonl" --out "$OUT/$name" \
      --config "${CONFIG[$name]:-recipes/search.toml}" --cache-dir "$OUT/cache" --resume "${sets[@]}" > "$OUT/$name.log" 2>&1
    # The last epoch, as recipes/search.sh compares: a model this far from converged can have its lowest greedy
    # WER (best.pt) at epoch 1, where it says almost nothing.
    "$PY" -m asr.cli export "$OUT/$name/last.pt" -o "$OUT/$name.onnx" >> "$OUT/$name.log" 2>&1
  fi
  if [ ! -s "$OUT/$name.eval.json" ]; then
    "$PY" -m asr.cli eval "$DATA/dev.jsonl" --model "$OUT/$name.onnx" --lm "$LM" --beam 32 --threads 1 --json > "$OUT/$name.eval.tmp"
    mv "$OUT/$name.eval.tmp" "$OUT/$name.eval.json"
  fi
done
"$PY" - "$OUT" "${ORDER[@]}" <<'PY' | tee "$OUT/results.md"
import csv, json, os, sys
out = sys.argv[1]
print("| variant | dev WER, LM + lexicon | LibriSpeech | AN4 | training audio-s/s | runtime RTF (1 thread) |")
print("|---|---|---|---|---|---|")
for name in sys.argv[2:]:
    path = f"{out}/{name}.eval.json"
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    parts = {("an4" if "an4" in c else "librispeech" if "librispeech" in c else c): p for c, p in r["by_corpus"].items()}
    rows = list(csv.DictReader(open(f"{out}/{name}/metrics.csv")))
    speed = sum(float(x["audio_per_second"]) for x in rows) / len(rows)
    part = lambda k: f"{parts[k]['wer']:.1%}" if k in parts else "-"
    print(f"| {name} | {r['wer']:.1%} | {part('librispeech')} | {part('an4')} | {speed:.0f} | {r['rtf']:.4f} |")
PY
