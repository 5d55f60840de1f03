"""`asr export`: checkpoint -> verified .onnx (imported lazily by asr.cli)."""

from __future__ import annotations

import argparse
import json
import sys

from asr.argtypes import int_at_least
from asr.metadata import MAX_CHUNK_STEPS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="training checkpoint (.pt)")
    p.add_argument("-o", "--output", required=True, help="model file to write (.onnx)")
    p.add_argument("--int8", action="store_true", help="dynamic int8 quantisation of the weights")
    p.add_argument("--chunk-steps", type=int_at_least(1, MAX_CHUNK_STEPS), default=4,
                   help="model steps per streaming call (default 4)")
    p.add_argument("--model-version", default="1", help="version string stored in the model")
    p.add_argument("--accuracy", help="JSON file with measured accuracy to store in the model")
    p.add_argument("--check", metavar="MANIFEST", help="with --int8: report WER/CER of fp32 and int8 on this manifest")


def run(args: argparse.Namespace) -> int:
    from training.checkpoint import CheckpointError

    from .onnx_export import ExportError, export

    accuracy = None
    if args.accuracy:
        try:
            with open(args.accuracy, encoding="utf-8") as f:
                accuracy = json.load(f)
        except (OSError, ValueError) as e:
            print(f"asr export: --accuracy {args.accuracy}: not a readable JSON file ({e})", file=sys.stderr)
            return 1
        if not isinstance(accuracy, dict):
            print(f"asr export: --accuracy {args.accuracy}: not a JSON object", file=sys.stderr)
            return 1
    try:
        report = export(args.checkpoint, args.output, chunk_steps=args.chunk_steps, version=args.model_version,
                        accuracy=accuracy, int8=args.int8)
    except (ExportError, CheckpointError) as e:
        print(f"asr export: {e}", file=sys.stderr)
        return 1
    if args.int8 and args.check:
        report["check"] = compare_on_manifest(args.checkpoint, args.output, args.check)
    print(json.dumps(report))
    return 0


def compare_on_manifest(checkpoint: str, int8_model: str, manifest: str) -> dict:
    """Accuracy of the fp32 export and the int8 model on one manifest, and the change."""
    import os
    import tempfile

    from asr.evaluate import evaluate_manifest
    from asr.recognizer import Recognizer

    from .onnx_export import export

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = os.path.join(tmp, "fp32.onnx")
        export(checkpoint, fp32)
        scores = {name: evaluate_manifest(Recognizer.load(path, device="cpu"), manifest)
                  for name, path in (("fp32", fp32), ("int8", int8_model))}
    out = {name: {"wer": r["wer"], "cer": r["cer"], "rtf": r["rtf"]} for name, r in scores.items()}
    out["wer_change"] = scores["int8"]["wer"] - scores["fp32"]["wer"]
    return out
