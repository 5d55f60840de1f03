"""Synthetic training speech: sentences read by the Debian TTS engines (flite, festival, espeak-ng with
mbrola, pico2wave), each utterance at a random tempo and pitch, or by Kokoro-82M's neural voices
(training/kokoro.py) at a random speed, some as a blend of two voices; written as 16 kHz FLAC with a manifest.

Engines are found on the machine (scripts/install_tts.sh and scripts/install_kokoro.sh install them); the
corpus is reproducible from the seed, and a rerun continues where an interrupted one stopped."""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf

from asr.vocab import normalize_text

from . import kokoro


@dataclass(frozen=True)
class Voice:
    name: str  # also the manifest's speaker
    available: Callable[[], bool]
    command: Callable[[str, str], list[str]] | None = None  # (text file, wav out) -> argv
    speak: Callable[[Job], np.ndarray] | None = None  # in-process engines: audio at `rate`, the job's tempo applied
    rate: int = 0


@functools.cache
def _flite_voices() -> frozenset[str]:
    if not shutil.which("flite"):
        return frozenset()
    return frozenset(subprocess.run(["flite", "-lv"], capture_output=True, text=True).stdout.split())


def _flite(voice: str) -> Voice:
    return Voice(f"flite-{voice}", lambda: voice in _flite_voices(),
                 lambda txt, wav: ["flite", "-voice", voice, "-f", txt, "-o", wav])


def _festival(voice: str, folder: str) -> Voice:
    return Voice(f"festival-{voice}",
                 lambda: bool(shutil.which("text2wave")) and os.path.isdir(f"/usr/share/festival/voices/{folder}"),
                 lambda txt, wav: ["text2wave", "-eval", f"(voice_{voice})", "-o", wav, txt])


def _espeak(voice: str, mbrola: str = "") -> Voice:
    return Voice(f"espeak-{voice}",
                 lambda: bool(shutil.which("espeak-ng")) and (not mbrola or os.path.isdir(f"/usr/share/mbrola/{mbrola}")),
                 lambda txt, wav: ["espeak-ng", "-v", voice, "-f", txt, "-w", wav])


def _pico(lang: str) -> Voice:
    # pico2wave takes the text as an argument only; the caller passes the file's contents.
    return Voice(f"pico-{lang}", lambda: bool(shutil.which("pico2wave")),
                 lambda txt, wav: ["pico2wave", "-l", lang, "-w", wav, Path(txt).read_text()])


VOICES = [
    *(_flite(v) for v in ("slt", "rms", "awb", "kal16")),
    _festival("kal_diphone", "english/kal_diphone"),
    _festival("ked_diphone", "english/ked_diphone"),
    _festival("cmu_us_slt_arctic_hts", "us/cmu_us_slt_arctic_hts"),
    *(_espeak(v) for v in ("en-us+m3", "en-us+f2", "en-gb+m1", "en-gb-x-rp+f4", "en-gb-scotland+m2")),
    *(_espeak(f"mb-{v}", v) for v in ("us1", "us2", "us3", "en1")),
    _pico("en-US"), _pico("en-GB"),
]


def _kokoro(voice: str) -> Voice:
    return Voice(f"kokoro-{voice}", lambda: kokoro.installed(voice),
                 speak=lambda job: kokoro.say(job.text, list(job.mix), job.tempo), rate=kokoro.SAMPLE_RATE)


# Not among the default voices (the Debian ones, as the existing corpora were made): --engine kokoro.
KOKORO_VOICES = [_kokoro(v) for v in kokoro.VOICES]
ENGINES = {"debian": VOICES, "kokoro": KOKORO_VOICES}


def available_voices(names: list[str] | None = None, engine: str = "debian") -> list[Voice]:
    """The installed voices of an engine, or those named (of any engine), in the order known."""
    if names:
        known = VOICES + KOKORO_VOICES
        unknown = set(names) - {v.name for v in known}
        if unknown:
            raise ValueError(f"unknown voice(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(v.name for v in known)}")
        return [v for v in known if v.name in names and v.available()]
    voices = [v for v in ENGINES[engine] if v.available()]
    if engine == "kokoro":
        # The accented voices only when named: by default a Kokoro corpus speaks American and British English.
        voices = [v for v in voices if v.name.removeprefix("kokoro-")[:1] in kokoro.ENGLISH]
    return voices


def read_sentences(path: str, min_words: int = 4, max_words: int = 30) -> list[str]:
    """The corpus's sentences in the training alphabet, deduplicated, in file order."""
    seen, out = set(), []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = normalize_text(line)
            if min_words <= len(text.split()) <= max_words and text not in seen:
                seen.add(text)
                out.append(text)
    return out


@dataclass(frozen=True)
class Job:
    key: str
    voice: Voice
    text: str
    tempo: float
    cents: int
    pad: tuple[float, float]
    mix: tuple[tuple[str, float], ...] = ()  # Kokoro: (voice pack, weight), the job's voice first


def plan(sentences: list[str], voices: list[Voice], count: int, seed: int, tempo: tuple[float, float],
         pitch_cents: int, blend: float = 0.0) -> Iterator[Job]:
    """`count` utterances: sentences drawn without replacement, voices in turn, tempo and pitch at random;
    a Kokoro voice is blended with probability `blend` with another of the list (20-50 % of it), and its
    pitch is left as the model makes it. A plan is a prefix of any longer plan with the same seed, so
    raising `count` extends a corpus."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    packs = [v.name.removeprefix("kokoro-") for v in voices if v.name.startswith("kokoro-")]
    for n, i in enumerate(order[:count]):
        rng = random.Random(f"{seed}/{n}")
        voice = voices[n % len(voices)]
        job = Job(f"{voice.name}/{n:07d}", voice, sentences[i], round(rng.uniform(*tempo), 3),
                  rng.randint(-pitch_cents, pitch_cents), (round(rng.uniform(0.1, 0.5), 2), round(rng.uniform(0.2, 0.6), 2)))
        if voice.name.startswith("kokoro-"):
            # Drawn after the Debian voices' values, so their plans stay what they were before Kokoro.
            own = voice.name.removeprefix("kokoro-")
            others = [p for p in packs if p != own]
            mix: tuple[tuple[str, float], ...] = ((own, 1.0),)
            if others and rng.random() < blend:
                weight = round(rng.uniform(0.2, 0.5), 2)
                mix = ((own, round(1 - weight, 2)), (rng.choice(others), weight))
            job = Job(job.key, voice, job.text, job.tempo, 0, job.pad, mix)
        yield job


def render(job: Job, out_dir: str, sample_rate: int = 16000) -> dict:
    """Synthesises one utterance; returns its manifest entry. Raises RuntimeError when the engine fails."""
    path = os.path.join(out_dir, "audio", job.key + ".flac")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        txt, raw = os.path.join(tmp, "text.txt"), os.path.join(tmp, "raw.wav")
        if job.voice.speak:
            try:
                audio = job.voice.speak(job)
            except Exception as e:  # noqa: BLE001 - one sentence's failure is reported, the corpus goes on
                raise RuntimeError(f"{job.voice.name} failed: {e}") from e
            if audio.size == 0 or not np.isfinite(audio).all():
                raise RuntimeError(f"{job.voice.name} failed: no audio")
            sf.write(raw, audio, job.voice.rate, subtype="FLOAT")
            effects = []  # the engine applied the tempo itself
        else:
            with open(txt, "w") as f:
                f.write(job.text + "\n")
            p = subprocess.run(job.voice.command(txt, raw), capture_output=True, text=True)
            if p.returncode != 0 or not os.path.exists(raw) or os.path.getsize(raw) <= 44:
                raise RuntimeError(f"{job.voice.name} failed: {(p.stderr or 'no audio').strip().splitlines()[-1:]}")
            # sox: tempo changes speed but not pitch; pitch shifts by cents.
            effects = ["tempo", "-s", str(job.tempo), "pitch", str(job.cents)]
        # Resampled to 16 kHz mono, level normalised, silence padded; -R seeds sox's dither, so that the same
        # job gives the same samples.
        tmp_out = path + ".part.flac"
        p = subprocess.run(["sox", "-R", raw, "-r", str(sample_rate), "-c", "1", "-b", "16", tmp_out, *effects,
                            "norm", "-3", "pad", str(job.pad[0]), str(job.pad[1])], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"sox failed: {p.stderr.strip()}")
        os.replace(tmp_out, path)
    entry = {"audio": os.path.relpath(path, out_dir), "duration": round(sf.info(path).duration, 3),
             "text": job.text, "speaker": job.voice.name, "corpus": "synthetic",
             "tempo": job.tempo, "pitch_cents": job.cents}
    if len(job.mix) > 1:
        entry["blend"] = [list(m) for m in job.mix]
    return entry


def synthesize(sentences_path: str, out_dir: str, voices: list[Voice], count: int, seed: int = 1,
               tempo: tuple[float, float] = (0.85, 1.15), pitch_cents: int = 250, jobs: int = 2,
               progress: Callable[[int, int], None] | None = None, blend: float = 0.0) -> tuple[int, list[str]]:
    """Renders the plan into out_dir/synth.jsonl, skipping utterances a previous run already wrote.
    Returns (utterances in the manifest, error lines)."""
    if not voices:
        raise ValueError("no TTS voice is installed (run scripts/install_tts.sh, or scripts/install_kokoro.sh "
                         "for --engine kokoro)")
    os.makedirs(out_dir, exist_ok=True)
    manifest = os.path.join(out_dir, "synth.jsonl")
    done = set()
    if os.path.exists(manifest):
        with open(manifest) as f:
            done = {json.loads(line)["audio"] for line in f if line.strip()}
    todo = [j for j in plan(read_sentences(sentences_path), voices, count, seed, tempo, pitch_cents, blend)
            if os.path.join("audio", j.key + ".flac") not in done]
    errors: list[str] = []

    def safe(job: Job):
        try:
            return render(job, out_dir)
        except (RuntimeError, OSError) as e:
            return f"{job.key}: {e}"

    with open(manifest, "a") as f, ThreadPoolExecutor(max(1, jobs)) as pool:
        for n, result in enumerate(pool.map(safe, todo), 1):
            if isinstance(result, str):
                errors.append(result)
            else:
                f.write(json.dumps(result) + "\n")
                f.flush()  # an interrupted run keeps every finished utterance
                done.add(result["audio"])
            if progress:
                progress(n, len(todo))
    return len(done), errors
