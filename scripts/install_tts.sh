#!/usr/bin/env bash
# Installs the Debian text-to-speech engines used by `asr synth` (training/synth.py).
#   scripts/install_tts.sh             flite, espeak-ng, festival with its English voices (Debian main)
#   scripts/install_tts.sh --non-free  also mbrola with its US/UK voices and pico2wave: enables the
#                                      contrib and non-free components of the Debian sources first
set -euo pipefail
pkgs=(flite espeak-ng festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox)
sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
case "${1:-}" in
  --non-free)
    pkgs+=(mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 libttspico-utils)
    src=/etc/apt/sources.list.d/debian.sources
    if [ -f "$src" ] && ! grep -q "non-free" "$src"; then
      $sudo_cmd sed -i 's/^Components: main$/Components: main contrib non-free/' "$src"
    elif [ -f /etc/apt/sources.list ] && ! grep -q "non-free" /etc/apt/sources.list; then
      $sudo_cmd sed -i -E 's/^(deb .* main)$/\1 contrib non-free/' /etc/apt/sources.list
    fi ;;
  "") ;;
  *) echo "usage: scripts/install_tts.sh [--non-free]" >&2; exit 2 ;;
esac
$sudo_cmd apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
echo "installed: ${pkgs[*]}"
