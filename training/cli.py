"""`asr train`, `asr prepare`, `asr synth`: command-line fronts of the training package (imported lazily by
asr.cli)."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from asr.argtypes import int_at_least, positive_float


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help="training manifest(s), comma-separated")
    p.add_argument("--dev", required=True, help="validation manifest(s), comma-separated")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.csv)")
    p.add_argument("--config", help="TOML file with TrainConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set model.hidden=512 (repeatable)")
    p.add_argument("--epochs", type=int_at_least(1))
    p.add_argument("--batch-seconds", type=positive_float, help="audio per batch, padding included")
    p.add_argument("--lr", type=positive_float, help="peak learning rate")
    p.add_argument("--seed", type=int_at_least(0))
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--cache-dir", help="feature cache (default OUT/cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .config import load_config
    from .data import DataError
    from .onnx_import import InitError
    from .train import train

    overrides = list(args.set)
    for flag, key in (("epochs", "epochs"), ("batch_seconds", "batch_seconds"), ("lr", "lr"), ("seed", "seed")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    try:
        cfg = load_config(args.config, overrides)
    except (ValueError, OSError) as e:
        print(f"asr train: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "command.txt"), "a") as f:
        f.write(shlex.join(["asr", *sys.argv[1:]]) + "\n")
    try:
        result = train(args.train.split(","), args.dev.split(","), args.out, cfg, resume=args.resume,
                       cache_dir=args.cache_dir, device=args.device)
    except InitError as e:
        print(f"asr train: init {e}", file=sys.stderr)
        return 2
    except (CheckpointError, DataError) as e:
        print(f"asr train: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"best": result["best"], "averaged": result.get("averaged")}))
    return 0


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    from .prepare import IMPORTERS

    p.add_argument("corpus", choices=sorted(IMPORTERS), help="layout of SOURCE")
    p.add_argument("source", help="corpus folder (for commonvoice also a .tsv file)")
    p.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl)")
    p.epilog = ("An utterance that cannot be used (no transcript, a transcript that is not UTF-8 or holds characters "
                "outside the vocabulary, unreadable audio) is skipped with one line on stderr; the manifest holds the "
                "rest and the exit status is 0. It is 1 only when SOURCE itself cannot be read.")


def run_prepare(args: argparse.Namespace) -> int:
    from .prepare import IMPORTERS, write_manifest

    if not os.path.exists(args.source):
        print(f"asr prepare: {args.source}: no such file or folder", file=sys.stderr)
        return 1
    try:
        entries, skipped = IMPORTERS[args.corpus](args.source)
    except (OSError, KeyError, ValueError) as e:
        print(f"asr prepare: {args.source} is not a {args.corpus} corpus ({e})", file=sys.stderr)
        return 1
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    write_manifest(entries, args.output)
    hours = sum(e["duration"] for e in entries) / 3600
    print(f"{args.output}: {len(entries)} utterances, {hours:.2f} h; {len(skipped)} skipped"
          + (" (reasons on stderr)" if skipped else ""))
    return 0


def add_synth_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sentences", nargs="?", help="text file, one sentence per line (e.g. ../shared/data/text/sentences.txt)")
    p.add_argument("-o", "--output", help="corpus folder: audio/VOICE/*.flac and synth.jsonl")
    p.add_argument("--utterances", type=int_at_least(1), default=2000, help="how many to synthesise (default 2000)")
    p.add_argument("--voices", help="comma-separated voice names (default: every installed voice of --engine)")
    p.add_argument("--engine", choices=("debian", "kokoro"), default="debian",
                   help="debian: flite, festival, espeak-ng, pico (scripts/install_tts.sh); kokoro: Kokoro-82M's "
                        "American and British voices (scripts/install_kokoro.sh). Default debian")
    p.add_argument("--blend", type=float, default=0.3,
                   help="kokoro: share of utterances spoken by a blend of two voices (default 0.3)")
    p.add_argument("--tempo", default="0.85,1.15", help="tempo range MIN,MAX (default 0.85,1.15)")
    p.add_argument("--pitch-cents", type=int_at_least(0), default=250, help="pitch shifted by up to +/- this (default 250)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int_at_least(1), default=os.cpu_count() or 1)
    p.add_argument("--list-voices", action="store_true", help="list the known voices and whether each is installed")


def run_synth(args: argparse.Namespace) -> int:
    from .synth import KOKORO_VOICES, VOICES, available_voices, synthesize

    if args.list_voices:
        for v in VOICES + KOKORO_VOICES:
            print(f"{v.name}\t{'installed' if v.available() else 'missing'}")
        return 0
    if not args.sentences or not args.output:
        print("asr synth: SENTENCES and --output are required (or --list-voices)", file=sys.stderr)
        return 2
    try:
        lo, hi = (float(x) for x in args.tempo.split(","))
    except ValueError:
        print(f"asr synth: --tempo {args.tempo!r} is not MIN,MAX", file=sys.stderr)
        return 2
    if not 0 <= args.blend <= 1:
        print(f"asr synth: --blend {args.blend} is not between 0 and 1", file=sys.stderr)
        return 2
    voices = available_voices(args.voices.split(",") if args.voices else None, args.engine)
    if args.engine == "kokoro" and not voices:
        from .kokoro import missing

        print(f"asr synth: Kokoro is not installed (missing {', '.join(missing()) or 'the named voices'}; "
              "run scripts/install_kokoro.sh)", file=sys.stderr)
        return 1
    total, errors = synthesize(args.sentences, args.output, voices, args.utterances, args.seed, (lo, hi),
                               args.pitch_cents, args.jobs,
                               progress=lambda n, k: print(f"\r{n}/{k}", end="", file=sys.stderr, flush=True),
                               blend=args.blend)
    print(file=sys.stderr)
    for line in errors:
        print(f"failed: {line}", file=sys.stderr)
    print(f"{os.path.join(args.output, 'synth.jsonl')}: {total} utterances from {len(voices)} voices; "
          f"{len(errors)} failed")
    return 1 if errors else 0
