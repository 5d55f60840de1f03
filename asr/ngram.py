"""asr's compact n-gram format: a back-off model as sorted integer arrays with 8-bit quantised scores, in one
compressed .npz file, scored in pure Python (numpy arrays, searched with bisect) on the runtime-only install.

Each n-gram is stored under its *reversed* history: key = (index of its last n-1 words) x V + first word. So
the scorer finds w, then (h3 w), then (h2 h3 w)... one binary search each, stopping at the first n-gram the
model lacks; the contexts (h3), (h2 h3)... whose back-off weights it needs are found the same way.
Probabilities and back-offs are quantised to 256 levels per order (KenLM's -q 8 does the same); keys are
stored as deltas and expanded at load.
"""

from __future__ import annotations

import bisect
import json
import zipfile

import numpy as np

from .atomic import atomic_write

FORMAT = "asr-ngram/1"
LEVELS = 256


def wants_compact(path: str) -> bool:
    return path.endswith(".npz")


def is_ngram_file(path: str) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return "meta.npy" in z.namelist()


def _quantise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and a 256-entry codebook: one-dimensional k-means (Lloyd's iterations from equal-population bins),
    which keeps the squared error low and gives the sparse tails levels of their own."""
    values = np.asarray(values, dtype=np.float64)
    uniq = np.unique(values)
    if len(uniq) <= LEVELS:
        return np.searchsorted(uniq, values).astype(np.uint8), uniq.astype(np.float32)
    book = np.unique(np.quantile(values, (np.arange(LEVELS) + 0.5) / LEVELS))
    for _ in range(12):
        codes = np.searchsorted((book[1:] + book[:-1]) / 2, values)
        sums, hits = np.bincount(codes, weights=values, minlength=len(book)), np.bincount(codes, minlength=len(book))
        book = np.unique(np.where(hits > 0, sums / np.maximum(hits, 1), book))
    codes = np.searchsorted((book[1:] + book[:-1]) / 2, values)
    return codes.astype(np.uint8), book.astype(np.float32)


def write(model, path: str) -> None:
    """Save an lmbuild.NgramModel."""
    v, order = len(model.vocab), model.order
    suffixes, firsts = model.suffixes(), model.firsts()
    arrays = {"meta": np.array(json.dumps({"format": FORMAT, "order": order, "vocab_size": v})),
              "vocab": np.frombuffer("\n".join(model.vocab).encode(), dtype=np.uint8)}
    rid = np.arange(v)  # forward index -> reversed-trie index, of the previous order
    for n in range(1, order + 1):
        if n == 1:
            perm, keys = np.arange(v), None
        else:
            rkeys = rid[suffixes[n]] * v + firsts[n]
            perm = np.argsort(rkeys, kind="stable")
            keys = rkeys[perm]
            rid = np.empty(len(perm), dtype=np.int64)
            rid[perm] = np.arange(len(perm))
            deltas = np.diff(keys, prepend=0)
            arrays[f"keys{n}"] = deltas.astype(np.uint32 if not len(deltas) or deltas.max() < 2**32 else np.uint64)
        codes, book = _quantise(model.logprob[n][perm])
        arrays[f"prob{n}"], arrays[f"probbook{n}"] = codes, book
        if n < order:
            codes, book = _quantise(model.backoff[n][perm])
            arrays[f"backoff{n}"], arrays[f"backoffbook{n}"] = codes, book
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)


class CompactModel:
    """Back-off scoring with KenLM's semantics (log10; unknown words score as <unk>), states = word-id tuples."""

    def __init__(self, path: str):
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"unknown format {meta.get('format')!r}")
                self.order, v = int(meta["order"]), int(meta["vocab_size"])
                self.vocab = bytes(z["vocab"]).decode().split("\n")
                if len(self.vocab) != v:
                    raise ValueError("vocabulary size does not match")
                self._keys = [None, None] + [memoryview(np.cumsum(z[f"keys{n}"], dtype=np.int64))
                                             for n in range(2, self.order + 1)]
                self._prob = [None] + [self._scores(z, "prob", n) for n in range(1, self.order + 1)]
                self._backoff = [None] + [self._scores(z, "backoff", n) for n in range(1, self.order)]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ValueError(f"{path}: not a readable asr n-gram model ({e})") from None
        self.v = v
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.words = frozenset(self.vocab[3:])
        self._bos, self._eos = self.ids["<s>"], self.ids["</s>"]

    @staticmethod
    def _scores(z, name: str, n: int):
        """(codes as a memoryview, codebook as a list): indexing both gives Python floats, fast."""
        return memoryview(np.ascontiguousarray(z[f"{name}{n}"])), z[f"{name}book{n}"].astype(np.float64).tolist()

    def _find(self, n: int, key: int) -> int:
        keys = self._keys[n]
        i = bisect.bisect_left(keys, key)
        return i if i < len(keys) and keys[i] == key else -1

    def begin(self) -> tuple[int, ...]:
        return (self._bos,)

    def score(self, state: tuple[int, ...], word: str) -> tuple[float, tuple[int, ...]]:
        """log10 p(word | state) and the next state (at most order - 1 word ids)."""
        w = self.ids.get(word, 0)
        codes, book = self._prob[1]
        logp, backoff = book[codes[w]], 0.0
        gram, ctx, v = w, -1, self.v
        for n, h in enumerate(reversed(state), start=2):
            if n > self.order:
                break
            ctx = h if n == 2 else self._find(n - 1, ctx * v + h)
            if ctx < 0:  # a longer context extends this one: none exists either
                break
            if gram >= 0:
                gram = self._find(n, gram * v + h)
                if gram >= 0:
                    codes, book = self._prob[n]
                    logp, backoff = book[codes[gram]], 0.0
                    continue
            codes, book = self._backoff[n - 1]
            backoff += book[codes[ctx]]
        return logp + backoff, (state + (w,))[-(self.order - 1):] if self.order > 1 else ()
