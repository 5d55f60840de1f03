"""`asr export`: checkpoint -> verified .onnx (imported lazily by asr.cli)."""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.onnx)")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the weights")
    p.add_argument("--chunk-steps", type=int, default=4, help="model steps per streaming call (default 4)")
    p.add_argument("--model-version", default="1", help="version string stored in the model")
    p.add_argument("--accuracy", help="JSON file with measured accuracy to store in the model")


def run(args: argparse.Namespace) -> int:
    from .onnx_export import ExportError, export

    accuracy = None
    if args.accuracy:
        with open(args.accuracy) as f:
            accuracy = json.load(f)
    try:
        report = export(args.checkpoint, args.output, chunk_steps=args.chunk_steps, version=args.model_version,
                        accuracy=accuracy, int8=args.int8)
    except (ExportError, FileNotFoundError, KeyError) as e:
        print(f"asr export: {e}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0
