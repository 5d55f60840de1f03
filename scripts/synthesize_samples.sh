#!/usr/bin/env bash
# Regenerates the bundled sample recordings in assets/samples with Debian's flite voices.
# Needs: apt-get install flite sox. The texts are IEEE "Harvard" sentences (public domain).
set -euo pipefail
cd "$(dirname "$0")/../assets/samples"
make() {  # name voice text
  flite -voice "$2" -t "$3" -o "/tmp/$1.raw.wav"
  sox "/tmp/$1.raw.wav" -r 16000 -c 1 -b 16 "$1.wav" pad 0.3 0.6
  # The transcript is the spoken text normalised like the training data.
  echo "$3" | tr -d '.,' > "$1.txt"
  rm "/tmp/$1.raw.wav"
}
make harvard-slt slt "the birch canoe slid on the smooth planks. glue the sheet to the dark blue background. it is easy to tell the depth of a well."
make harvard-rms rms "these days a chicken leg is a rare dish. rice is often served in round bowls. the juice of lemons makes fine punch."
make harvard-awb awb "the box was thrown beside the parked truck. the hogs were fed chopped corn and garbage. four hours of steady work faced us."
