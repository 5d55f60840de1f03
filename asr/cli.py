"""The `asr` command. Subcommands that need torch (train, export) import it lazily."""

from __future__ import annotations

import argparse
import json
import os
import sys


def _fail(msg: str) -> None:
    print(f"asr: {msg}", file=sys.stderr)


def _load_recognizer(args):
    from .endpoint import EndpointConfig
    from .recognizer import Recognizer

    endpoint = EndpointConfig(args.silence_after_speech, args.silence_without_speech, args.max_segment)
    return Recognizer.load(args.model, device=args.device, threads=args.threads, endpoint=endpoint,
                           beam=_beam_config(args), lm=args.lm)


def _beam_config(args):
    """Beam search when asked for (--beam, --lm or hotwords); greedy otherwise."""
    from .beam import BeamConfig, parse_hotwords

    items = list(args.hotword)
    if args.hotwords_file:
        with open(args.hotwords_file, encoding="utf-8") as f:
            items += f.read().splitlines()
    hotwords = {w: b for phrase, b in parse_hotwords(items).items() for w in phrase.split()}
    if not (args.beam or args.lm or hotwords):
        return None
    return BeamConfig(beam=args.beam or 8, lm_weight=args.lm_weight, word_bonus=args.word_bonus,
                      token_beam=args.token_beam, hotwords=hotwords)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model .onnx file (default: the bundled model, or $ASR_MODEL)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="execution provider (auto: CUDA when it loads, else CPU)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads (0: all cores)")
    p.add_argument("--silence-after-speech", type=float, default=1.0, metavar="S",
                   help="close a segment after this much trailing silence (default 1.0)")
    p.add_argument("--silence-without-speech", type=float, default=2.4, metavar="S",
                   help="reset after this much audio with nothing recognised (default 2.4)")
    p.add_argument("--max-segment", type=float, default=20.0, metavar="S", help="longest segment (default 20)")
    d = p.add_argument_group("decoding (greedy unless one of --beam, --lm, --hotword is given)")
    d.add_argument("--beam", type=int, default=0, help="beam search with this many hypotheses (default 8 when on)")
    d.add_argument("--lm", help="word n-gram language model (KenLM binary or ARPA; needs the kenlm module)")
    d.add_argument("--lm-weight", type=float, default=0.5, help="language model weight (default 0.5)")
    d.add_argument("--word-bonus", type=float, default=1.0, help="score added per word (default 1.0)")
    d.add_argument("--token-beam", type=float, default=10.0,
                   help="extend only tokens within this log-prob of the best (default 10)")
    d.add_argument("--hotword", action="append", default=[], metavar="WORD[:BONUS]",
                   help="boost a word (repeatable; default bonus 5)")
    d.add_argument("--hotwords-file", metavar="FILE", help="hotwords, one WORD[:BONUS] per line")


def cmd_transcribe(args) -> int:
    from .audio import AudioError
    from .writers import render

    rec = _load_recognizer(args)
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
    failed = 0
    for path in args.files:
        try:
            document = render(list(rec.transcribe(path)), args.format)
        except AudioError as e:
            print(f"asr: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.output_dir:
            stem = os.path.splitext(os.path.basename(path))[0]
            _write_atomic(os.path.join(args.output_dir, f"{stem}.{args.format}"), document)
        else:
            if len(args.files) > 1:
                print(f"==> {path} <==")
            sys.stdout.write(document)
            sys.stdout.flush()
    return 1 if failed else 0


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def cmd_info(args) -> int:
    from .model import OnnxAcousticModel
    from .recognizer import default_model_path

    model = OnnxAcousticModel(args.model or default_model_path(), device="cpu")
    print(json.dumps({"path": model.path, **model.info.summary()}, indent=2))
    return 0


def cmd_eval(args) -> int:
    import tempfile

    from .evaluate import evaluate_manifest

    if args.model and args.model.endswith(".pt"):  # a training checkpoint: export it to a temporary model
        try:
            from export.onnx_export import export
        except ImportError:
            _fail("evaluating a checkpoint needs PyTorch: pip install -e '.[train]'")
            return 2
        with tempfile.TemporaryDirectory() as tmp:
            export(args.model, os.path.join(tmp, "checkpoint.onnx"))
            args.model = os.path.join(tmp, "checkpoint.onnx")
            return cmd_eval(args)
    rec = _load_recognizer(args)
    report = evaluate_manifest(rec, args.manifest, progress=not args.json)
    if args.json:
        print(json.dumps(report))
    else:
        for corpus, part in report["by_corpus"].items():
            print(f"{corpus}: WER {part['wer']:.2%}  CER {part['cer']:.2%}  ({part['utterances']} utterances)")
        print(f"all: WER {report['wer']:.2%}  CER {report['cer']:.2%}  RTF {report['rtf']:.4f}  "
              f"({report['utterances']} utterances, {report['audio_seconds'] / 60:.1f} min, {report['failed']} failed)")
    return 1 if report["failed"] else 0


def cmd_live(args) -> int:
    from .live import run_live

    return run_live(_load_recognizer(args), args)


def cmd_devices(args) -> int:
    from .live import list_devices

    return list_devices()


def cmd_train(args) -> int:
    from training.cli import run

    return run(args)


def cmd_prepare(args) -> int:
    from training.cli import run_prepare

    return run_prepare(args)


def cmd_export(args) -> int:
    from export.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="asr", description="Streaming speech recognition.")
    p.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("files", nargs="+", metavar="FILE")
    t.add_argument("--format", choices=["txt", "json", "srt", "vtt"], default="txt")
    t.add_argument("--output-dir", help="write FILE-stem.FORMAT here instead of printing")
    _add_model_args(t)
    t.set_defaults(func=cmd_transcribe)

    i = sub.add_parser("info", help="print a model's metadata")
    i.add_argument("model", nargs="?", help="model .onnx file (default: the bundled model)")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("eval", help="WER, CER and real-time factor on a JSONL manifest")
    e.add_argument("manifest")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    _add_model_args(e)
    e.set_defaults(func=cmd_eval)

    lv = sub.add_parser("live", help="transcribe the microphone as you speak")
    lv.add_argument("--input", dest="input_device", help="input device index or name substring (see `asr devices`)")
    lv.add_argument("--timestamps", action="store_true", help="prefix finals with their times")
    lv.add_argument("--meter", action="store_true", help="show an input level meter (terminal only)")
    lv.add_argument("--output", help="also append finals to this file (.jsonl: JSON lines, else text)")
    lv.add_argument("--save-audio", metavar="FILE.wav", help="record what was heard (16 kHz mono)")
    lv.add_argument("--max-queue", type=float, default=10.0, metavar="S",
                    help="audio buffered while recognition catches up; older audio is dropped (default 10)")
    lv.add_argument("--reconnect", action="store_true", help="when the device disappears, wait for it to return")
    lv.add_argument("--duration", type=float, default=0.0, help="stop after this many seconds (0: until Ctrl+C)")
    _add_model_args(lv)
    lv.set_defaults(func=cmd_live)

    d = sub.add_parser("devices", help="list audio input devices")
    d.set_defaults(func=cmd_devices)

    pr = sub.add_parser("prepare", help="write a JSONL manifest for a corpus folder")
    pr.set_defaults(func=cmd_prepare)

    tr = sub.add_parser("train", help="train an acoustic model (needs the train extra)")
    tr.set_defaults(func=cmd_train, needs_torch=True)
    ex = sub.add_parser("export", help="export a checkpoint to a self-describing .onnx model (needs the train extra)")
    ex.set_defaults(func=cmd_export, needs_torch=True)
    # Only argparse is imported here: torch loads when the command runs.
    from export.cli import add_arguments as add_export
    from training.cli import add_arguments as add_train
    from training.cli import add_prepare_arguments

    add_prepare_arguments(pr)
    add_train(tr)
    add_export(ex)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "needs_torch", False):
        try:
            import torch  # noqa: F401
        except ImportError:
            _fail(f"`asr {args.command}` needs PyTorch: pip install 'asr[train]' (or pip install -e '.[train]')")
            return 2
    from .audio import AudioError
    from .model import ModelError

    try:
        return args.func(args)
    except (ModelError, AudioError, ValueError, OSError) as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
