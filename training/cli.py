"""`asr train`: command-line front of training.train (imported lazily by asr.cli)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--train", required=True, help="training manifest(s), comma-separated")
    p.add_argument("--dev", required=True, help="validation manifest(s), comma-separated")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.csv)")
    p.add_argument("--config", help="TOML file with TrainConfig fields")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration field, e.g. --set model.hidden=512 (repeatable)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-seconds", type=float)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--cache-dir", help="feature cache (default OUT/cache)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def run(args: argparse.Namespace) -> int:
    import os

    from .config import load_config
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
    result = train(args.train.split(","), args.dev.split(","), args.out, cfg, resume=args.resume,
                   cache_dir=args.cache_dir, device=args.device)
    print(json.dumps({"best": result["best"], "averaged": result.get("averaged")}))
    return 0


def add_prepare_arguments(p: argparse.ArgumentParser) -> None:
    from .prepare import IMPORTERS

    p.add_argument("corpus", choices=sorted(IMPORTERS), help="layout of SOURCE")
    p.add_argument("source", help="corpus folder (for commonvoice also a .tsv file)")
    p.add_argument("-o", "--output", required=True, help="manifest to write (.jsonl)")


def run_prepare(args: argparse.Namespace) -> int:
    import os

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
    print(f"{args.output}: {len(entries)} utterances, {hours:.2f} h; {len(skipped)} skipped")
    return 0
