"""The `asr` command. Subcommands that need torch (train, export) import it lazily."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .argtypes import int_at_least, non_negative_float, number, positive_float
from .beam import DEFAULT_HOTWORD_BONUS, BeamConfig
from .decoders import DecodingConfig
from .endpoint import EndpointConfig
from .messages import first_line, printable


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (the usage itself is one --help away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _fail(msg: str) -> None:
    print(f"asr: {printable(msg)}", file=sys.stderr)


def _load_recognizer(args):
    from .recognizer import Recognizer

    endpoint = EndpointConfig(args.silence_after_speech, args.silence_without_speech, args.max_segment)
    return Recognizer.load(args.model, device=args.device, threads=args.threads, endpoint=endpoint,
                           decoding=_decoding_config(args), vad=_vad_config(args))


def _vad_config(args):
    if not args.vad:
        return None
    from .vad import VadConfig

    return VadConfig(threshold=args.vad_threshold, silence=args.vad_silence, skip=args.vad_skip)


def _decoding_config(args) -> DecodingConfig:
    """The decoding flags as the one DecodingConfig (decoders.make_decoder decides greedy or beam from it)."""
    from .beam import hotword_boosts

    items = list(args.hotword)
    if args.hotwords_file:
        items += _read_hotwords_file(args.hotwords_file)
    beam = BeamConfig(beam=args.beam or BeamConfig.beam, lm_weight=args.lm_weight, word_bonus=args.word_bonus,
                      token_beam=args.token_beam, hotwords=hotword_boosts(items), lexicon=not args.open_vocabulary)
    return DecodingConfig(lm=args.lm or not args.no_lm, beam_search=bool(args.beam), beam=beam)


def _probability(text: str) -> float:
    value = number()(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not between 0 and 1")
    return value


def _read_hotwords_file(path: str, limit: int = 1 << 20) -> list[str]:
    """Its lines; bounded, because a hotword list is small and the beam checks every one of them."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: hotwords file over {limit >> 20} MB")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    return [line for line in lines if line.strip() and not line.lstrip().startswith("#")]  # blanks, comments


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model .onnx file (default: the bundled model, or $ASR_MODEL)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="execution provider (auto: CUDA when it loads, else CPU)")
    p.add_argument("--threads", type=int_at_least(0, 256), default=0, help="onnxruntime threads (0: all cores)")
    ep = EndpointConfig
    p.add_argument("--silence-after-speech", type=positive_float, default=ep.silence_after_speech, metavar="S",
                   help=f"close a segment after this much trailing silence (default {ep.silence_after_speech:g})")
    p.add_argument("--silence-without-speech", type=positive_float, default=ep.silence_without_speech, metavar="S",
                   help=f"reset after this much audio with nothing recognised (default {ep.silence_without_speech:g})")
    p.add_argument("--max-segment", type=positive_float, default=ep.max_segment, metavar="S",
                   help=f"longest segment (default {ep.max_segment:g})")
    from .vad import INSTALL_HINT, VadConfig

    v = p.add_argument_group(f"voice activity detection (Silero VAD, from the silero-vad wheel: {INSTALL_HINT})")
    v.add_argument("--vad", action="store_true",
                   help="files: skip long non-speech; live and serve: also close a segment on VAD silence")
    v.add_argument("--vad-threshold", type=_probability, default=VadConfig.threshold, metavar="P",
                   help=f"speech probability that starts speech (default {VadConfig.threshold:g})")
    v.add_argument("--vad-silence", type=positive_float, default=VadConfig.silence, metavar="S",
                   help=f"close a segment after this much VAD silence after speech (default {VadConfig.silence:g})")
    v.add_argument("--vad-skip", type=number(above=VadConfig.pad), default=VadConfig.skip, metavar="S",
                   help=f"files: do not decode non-speech longer than this (more than the {VadConfig.pad:g} s kept "
                   f"before speech; default {VadConfig.skip:g})")
    d = p.add_argument_group("decoding (the bundled model decodes with the book LM once scripts/build_lm.sh has built "
                             "it, $ASR_LM or ~/.cache/asr/: beam search over the LM's words; otherwise, and for other "
                             "models, greedy unless --beam, --lm or a hotword is given)")
    d.add_argument("--beam", type=int_at_least(0, 1024), default=0, help=f"beam search with this many hypotheses (default {BeamConfig.beam} when on)")
    d.add_argument("--lm", help="word n-gram language model (ARPA, asr's .npz, or KenLM binary with the kenlm module)")
    d.add_argument("--no-lm", action="store_true",
                   help="leave the book LM out: greedy decoding, fastest, but it spells non-words")
    d.add_argument("--lm-weight", type=non_negative_float, default=BeamConfig.lm_weight,
                   help=f"language model weight (default {BeamConfig.lm_weight}, tuned on dev)")
    d.add_argument("--word-bonus", type=number(), default=BeamConfig.word_bonus,
                   help=f"score added per word (default {BeamConfig.word_bonus}, tuned on dev with the bundled model and LM)")
    d.add_argument("--token-beam", type=positive_float, default=BeamConfig.token_beam,
                   help=f"extend only tokens within this log-prob of the best (default {BeamConfig.token_beam:g})")
    d.add_argument("--hotword", action="append", default=[], metavar="WORD[:BONUS]",
                   help=f"boost a word (repeatable; default bonus {DEFAULT_HOTWORD_BONUS:g}, tuned on a hotword test)")
    d.add_argument("--hotwords-file", metavar="FILE", help="hotwords, one WORD[:BONUS] per line")
    d.add_argument("--open-vocabulary", action="store_true",
                   help="with an LM (the default with the bundled model), let the beam spell words it does not "
                   "list (default: only its words and hotwords)")


def cmd_transcribe(args) -> int:
    from functools import partial

    from .batch import expand_inputs, run_batch
    from .writers import FORMATS

    formats = list(FORMATS) if args.format == "all" else [args.format]
    if args.format == "all" and not args.output_dir:
        _fail("--format all needs --output-dir")
        return 2
    if args.output_dir and os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        _fail(f"--output-dir {args.output_dir}: exists and is not a folder")
        return 2
    recognizer = _load_recognizer(args)  # fails fast, once, on a bad model or options
    inputs = expand_inputs(args.files)
    if not inputs:
        _fail("no audio files found in " + " ".join(args.files))
        return 1
    if args.ray:
        return _transcribe_on_ray(args, inputs, formats)
    jobs = args.jobs or os.cpu_count() or 1
    loader = partial(_load_recognizer_for_worker, args, 1 if jobs > 1 else args.threads)
    return run_batch(inputs, formats, args.output_dir, loader, jobs=jobs, skip_existing=args.skip_existing,
                     recognizer=recognizer)


def _transcribe_on_ray(args, inputs, formats) -> int:
    from functools import partial

    from .batch import run_batch
    from .cluster import ClusterError, RayRunner

    if any(i.path == "-" for i in inputs):
        _fail("--ray: the cluster's workers read the files themselves, so standard input (-) cannot be one")
        return 2
    threads = args.threads or 1  # per actor: Ray gives each actor this many CPUs
    loader = partial(_load_recognizer_for_worker, args, threads)
    try:
        return run_batch(inputs, formats, args.output_dir, loader, skip_existing=args.skip_existing,
                         runner=RayRunner(args.ray, args.jobs, threads))
    except ClusterError as e:
        _fail(first_line(e))
        return 1


def _load_recognizer_for_worker(args, threads):
    args.threads = threads
    return _load_recognizer(args)


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


def cmd_serve(args) -> int:
    from .server import ServerConfig, run_server

    config = ServerConfig(host=args.host, port=args.port, max_clients=args.max_clients,
                          max_message_bytes=args.max_message_bytes, idle_timeout=args.idle_timeout)
    return run_server(_load_recognizer(args), config)


def cmd_client(args) -> int:
    from .client import run_client

    return run_client(args)


def cmd_bench(args) -> int:
    from .bench import run_bench

    return run_bench(args)


def cmd_lm_build(args) -> int:
    import time

    from . import lmbuild, ngram
    from .manifest import read_manifest

    exclude = None
    if args.exclude:
        exclude = lmbuild.excluded_sentences(item["text"] for path in args.exclude for item in read_manifest(path))
    t0 = time.monotonic()
    model = lmbuild.build(lambda: lmbuild.read_sentences(args.text, exclude), order=args.order,
                          vocab_size=args.vocab, min_count=args.min_count, max_ngrams=args.max_ngrams)
    if ngram.wants_compact(args.output):
        ngram.write(model, args.output)
    else:
        lmbuild.write_arpa(model, args.output)
    print(f"{args.output}: {len(model.vocab) - 3} words, "
          + ", ".join(f"{n}-grams {c}" for n, c in model.counts().items())
          + f", {os.path.getsize(args.output) / 1e6:.1f} MB, {time.monotonic() - t0:.0f} s")
    return 0


def cmd_train(args) -> int:
    from training.cli import run

    return run(args)


def cmd_prepare(args) -> int:
    from training.cli import run_prepare

    return run_prepare(args)


def cmd_synth(args) -> int:
    from training.cli import run_synth

    return run_synth(args)


def cmd_export(args) -> int:
    from export.cli import run

    return run(args)


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .writers import FORMATS

    p = _Parser(prog="asr", description="Streaming speech recognition.")
    p.add_argument("--version", action="version", version=f"asr {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("transcribe", help="transcribe audio files")
    t.add_argument("files", nargs="+", metavar="FILE", help="files, folders (searched recursively), globs, or - for stdin")
    t.add_argument("--format", choices=[*FORMATS, "all"], default="txt")
    t.add_argument("--output-dir", help="write FILE-stem.FORMAT here (atomically) instead of printing")
    t.add_argument("--skip-existing", action="store_true", help="skip inputs whose outputs already exist")
    t.add_argument("--jobs", type=int_at_least(0, 256), default=0,
                   help="parallel workers (default: number of cores; with --ray, actors: one per cluster CPU)")
    t.add_argument("--ray", metavar="ADDRESS", help="run the workers on a Ray cluster: auto (the one `ray start` "
                   "runs here, or $RAY_ADDRESS), HOST:PORT, or local (a private one on this machine); inputs and "
                   "--output-dir must be on storage every node sees (needs the cluster extra)")
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
    lv.add_argument("--max-queue", type=positive_float, default=10.0, metavar="S",
                    help="audio buffered while recognition catches up; older audio is dropped (default 10)")
    lv.add_argument("--reconnect", action="store_true", help="when the device disappears, wait for it to return")
    lv.add_argument("--duration", type=non_negative_float, default=0.0, help="stop after this many seconds (0: until Ctrl+C)")
    _add_model_args(lv)
    lv.set_defaults(func=cmd_live)

    d = sub.add_parser("devices", help="list audio input devices")
    d.set_defaults(func=cmd_devices)

    sv = sub.add_parser("serve", help="WebSocket streaming server (many clients share one model)")
    sv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    sv.add_argument("--port", type=int_at_least(0, 65535), default=2700, help="TCP port (default 2700; 0: any free port)")
    sv.add_argument("--max-clients", type=int_at_least(1), default=64, metavar="N",
                    help="connections beyond this are rejected with an error message (default 64)")
    sv.add_argument("--max-message-bytes", type=int_at_least(1024), default=1 << 20, metavar="N",
                    help="larger messages are rejected (default 1048576)")
    sv.add_argument("--idle-timeout", type=positive_float, default=30.0, metavar="S",
                    help="close connections silent for this long (default 30)")
    _add_model_args(sv)
    sv.set_defaults(func=cmd_serve)

    cl = sub.add_parser("client", help="stream a file or the microphone to `asr serve`")
    cl.add_argument("file", nargs="?", metavar="FILE", help="audio file (anything `asr transcribe` reads)")
    cl.add_argument("--mic", action="store_true", help="stream the microphone instead of a file")
    cl.add_argument("--input", dest="input_device", help="with --mic: input device index or name substring")
    cl.add_argument("--url", default="ws://127.0.0.1:2700", help="server URL (default ws://127.0.0.1:2700)")
    pace = cl.add_mutually_exclusive_group()
    pace.add_argument("--realtime", dest="realtime", action="store_true", default=True,
                      help="send a file at the speed it plays, in 20 ms blocks (default)")
    pace.add_argument("--fast", dest="realtime", action="store_false", help="send a file as fast as possible")
    cl.add_argument("--duration", type=non_negative_float, default=0.0, help="with --mic: stop after this many seconds")
    cl.add_argument("--hotword", action="append", default=[], metavar="WORD[:BONUS]",
                    help="boost a word for this stream (repeatable)")
    cl.add_argument("--no-lm", action="store_true", help="ask the server to decode this stream without its LM (greedy)")
    cl.set_defaults(func=cmd_client)

    bn = sub.add_parser("bench", help="real-time factor, server throughput, latency, memory (vs. pocketsphinx)")
    bn.add_argument("--model", help="model .onnx file (default: the bundled model, or $ASR_MODEL)")
    bn.add_argument("--audio", help="audio file to use (default: the bundled samples, concatenated)")
    bn.add_argument("--json", action="store_true", help="print one JSON object")
    bn.add_argument("--streams-max", type=int_at_least(1), default=256, metavar="N",
                    help="most concurrent real-time streams to try (default 256)")
    bn.add_argument("--latency-bound", type=positive_float, default=0.5, metavar="S",
                    help="a load level is sustained while p95 partial latency stays under this (default 0.5)")
    bn.add_argument("--level-seconds", type=positive_float, default=10.0, metavar="S",
                    help="audio each client streams per load level (default 10)")
    bn.add_argument("--server-threads", type=int_at_least(0, 256), default=1, metavar="N",
                    help="onnxruntime threads of the server (default 1; 0: all cores)")
    bn.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="the server's device (default cpu)")
    bn.add_argument("--no-lm", action="store_true", help="measure greedy decoding instead of the book LM")
    bn.set_defaults(func=cmd_bench)

    lm = sub.add_parser("lm", help="language model tools").add_subparsers(dest="lm_command", required=True,
                                                                          metavar="build")
    lb = lm.add_parser("build", help="build a word n-gram model (modified Kneser-Ney) from text")
    lb.add_argument("text", nargs="+", help="text files, one sentence per line (.xz/.gz unpacked; normalised like "
                    "transcripts), or .jsonl manifests (their transcripts); PATH@N counts a file N times")
    lb.add_argument("-o", "--output", required=True,
                    help="model to write: .npz is asr's compact binary format, anything else ARPA (both load with --lm)")
    lb.add_argument("--order", type=int_at_least(2), default=3)
    lb.add_argument("--vocab", type=int_at_least(0), default=0,
                    help="keep the N most frequent words, the rest become <unk> (default 0: every word)")
    lb.add_argument("--min-count", type=int_at_least(1), default=2,
                    help="prune n-grams (above unigrams) seen fewer times (default 2)")
    lb.add_argument("--max-ngrams", type=int_at_least(0), default=0,
                    help="prune to at most N n-grams above unigrams, least useful first (default 0: no budget)")
    lb.add_argument("--exclude", action="append", default=[], metavar="MANIFEST",
                    help="drop sentences sharing 10 words in a row with these transcripts (or equal to a short one): "
                    "keeps evaluation text out of the model (repeatable)")
    lb.set_defaults(func=cmd_lm_build)

    pr = sub.add_parser("prepare", help="write a JSONL manifest for a corpus folder")
    pr.set_defaults(func=cmd_prepare)

    sy = sub.add_parser("synth", help="synthesise a multi-voice training corpus (Debian TTS engines or Kokoro-82M)")
    sy.set_defaults(func=cmd_synth)

    tr = sub.add_parser("train", help="train an acoustic model (needs the train extra)")
    tr.set_defaults(func=cmd_train, needs_torch=True)
    ex = sub.add_parser("export", help="export a checkpoint to a self-describing .onnx model (needs the train extra)")
    ex.set_defaults(func=cmd_export, needs_torch=True)
    # Only argparse is imported here: torch loads when the command runs.
    from export.cli import add_arguments as add_export
    from training.cli import add_arguments as add_train
    from training.cli import add_prepare_arguments, add_synth_arguments

    add_prepare_arguments(pr)
    add_synth_arguments(sy)
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
        _fail(first_line(e))
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
