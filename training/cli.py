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
