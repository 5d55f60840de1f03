"""`asr lm build`: a word n-gram language model (modified Kneser-Ney), counted and estimated with numpy.

Words become integer ids and each n-gram one int64 key, (index of its (n-1)-word prefix) x V + last word,
so counting is sorting and 50 M words are counted in minutes without an LM toolkit. Pruning to a size
budget keeps the n-grams that change the model most (weighted difference: count x log of the n-gram's
probability over its back-off estimate), keeps every prefix and suffix of a kept n-gram (so contexts and
back-off paths exist), and recomputes every back-off weight so each distribution sums to one.
Written as ARPA (KenLM and other tools read it) or as asr's compact binary format (asr/ngram.py).
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
from array import array
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .atomic import atomic_write
from .manifest import read_manifest
from .vocab import normalize_text

SPECIALS = ("<unk>", "<s>", "</s>")
UNK, BOS, EOS = 0, 1, 2
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # KenLM's --discount_fallback, for orders too small to estimate them


@dataclass
class NgramModel:
    """A built model: per order n (index n; 0 unused), sorted keys and log10 probabilities / back-offs."""

    vocab: list[str]  # id -> word; ids 0-2 are SPECIALS
    keys: list[np.ndarray]  # keys[1] = word ids; keys[n] = prefix index * V + last word, sorted
    logprob: list[np.ndarray]
    backoff: list[np.ndarray]  # orders below the highest; 0.0 where a context has no continuation

    @property
    def order(self) -> int:
        return len(self.keys) - 1

    def counts(self) -> dict[int, int]:
        return {n: len(self.keys[n]) for n in range(1, self.order + 1)}

    def suffixes(self) -> list[np.ndarray]:
        """Per order n, the index of each n-gram's last n-1 words at order n-1."""
        return _suffixes(self.keys, len(self.vocab))

    def firsts(self) -> list[np.ndarray]:
        """Per order n, each n-gram's first word."""
        return _firsts(self.keys, len(self.vocab))


def choose_vocabulary(word_counts: Counter, size: int = 0) -> list[str]:
    """SPECIALS, then the `size` most frequent words (all when 0), most frequent first."""
    ranked = sorted((w for w in word_counts if w not in SPECIALS), key=lambda w: (-word_counts[w], w))
    return list(SPECIALS) + (ranked[:size] if size else ranked)


def _stream(sentences, vocab: list[str]) -> np.ndarray:
    ids = {w: i for i, w in enumerate(vocab)}
    get = ids.get
    out = array("i")
    for line in sentences:
        words = line.split()
        if words:
            out.append(BOS)
            out.extend([get(w, UNK) for w in words])
            out.append(EOS)
    return np.frombuffer(out, dtype=np.int32)


def count_ngrams(stream: np.ndarray, vocab_size: int, order: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Sorted unique keys and raw counts per order; n-grams never cross a sentence boundary."""
    sentence = np.cumsum(stream == BOS, dtype=np.int32)
    keys, counts = [None, np.arange(vocab_size, dtype=np.int64)], [None, np.bincount(stream, minlength=vocab_size)]
    at = stream.astype(np.int64)  # index of the (n-1)-gram starting at each position, -1 where none
    for n in range(2, order + 1):
        m = len(stream) - n + 1
        pos = np.flatnonzero(sentence[:m] == sentence[n - 1:])
        if not len(pos):
            raise ValueError(f"no sentence is long enough for {n}-grams")
        uniq, inverse = np.unique(at[pos] * vocab_size + stream[pos + n - 1], return_inverse=True)
        keys.append(uniq)
        counts.append(np.bincount(inverse.ravel()))
        at = np.full(m, -1, dtype=np.int64)
        at[pos] = inverse.ravel()
        del pos, inverse
    return keys, counts


def _suffixes(keys: list[np.ndarray], v: int) -> list[np.ndarray]:
    suffix = [None, None, keys[2] % v] if len(keys) > 2 else [None, None]
    for n in range(3, len(keys)):
        suffix.append(np.searchsorted(keys[n - 1], suffix[n - 1][keys[n] // v] * v + keys[n] % v))
    return suffix


def _firsts(keys: list[np.ndarray], v: int) -> list[np.ndarray]:
    first = [None, keys[1]]
    for n in range(2, len(keys)):
        first.append(first[n - 1][keys[n] // v])
    return first


def _discounts(adjusted: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts [0, D1, D2, D3+] from the counts of counts 1-4 (Chen & Goodman)."""
    n1, n2, n3, n4 = (int(np.count_nonzero(adjusted == k)) for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) > 0:
        y = n1 / (n1 + 2 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        if all(0 < dk < k for k, dk in enumerate(d, 1)):
            return np.array((0.0, *d))
    return np.array((0.0, *FALLBACK_DISCOUNTS))


def estimate(keys, counts, v: int):
    """Interpolated modified Kneser-Ney: probabilities of every counted n-gram and each context's back-off."""
    order = len(keys) - 1
    suffix, first = _suffixes(keys, v), _firsts(keys, v)
    adjusted = [None] * (order + 1)
    adjusted[order] = counts[order]
    for n in range(order - 1, 0, -1):  # lower orders: how many words precede, except after <s>
        left = np.bincount(suffix[n + 1], minlength=len(keys[n]))
        adjusted[n] = np.where(first[n] == BOS, counts[n], left)
    a = adjusted[1].astype(np.float64)
    a[BOS] = 0
    d = _discounts(adjusted[1][a > 0])[np.minimum(adjusted[1], 3)]
    d[BOS] = 0
    total = a.sum()
    prob = [None, np.where(a > 0, (a - d) / total, 0.0) + d.sum() / total / (v - 1)]
    prob[1][BOS] = 0.0
    gamma = [None] * (order + 1)
    for n in range(2, order + 1):
        a = adjusted[n].astype(np.float64)
        d = _discounts(adjusted[n])[np.minimum(adjusted[n], 3)]
        ctx = keys[n] // v
        ctx_total = np.bincount(ctx, weights=a, minlength=len(keys[n - 1]))
        gamma[n - 1] = np.bincount(ctx, weights=d, minlength=len(keys[n - 1])) / np.maximum(ctx_total, 1e-300)
        prob.append((a - d) / ctx_total[ctx] + gamma[n - 1][ctx] * prob[n - 1][suffix[n]])
    return prob, gamma, suffix


def prune(keys, counts, prob, gamma, suffix, v: int, min_count: int = 1, max_ngrams: int = 0) -> list[np.ndarray]:
    """Which n-grams stay (orders >= 2: gain above a threshold chosen so at most max_ngrams stay, count >= min_count),
    closed under prefixes and suffixes. Unigrams all stay."""
    order = len(keys) - 1
    gain = [None, None]
    for n in range(2, order + 1):
        ctx = keys[n] // v
        with np.errstate(divide="ignore"):
            g = counts[n] * (np.log(prob[n]) - np.log(gamma[n - 1][ctx] * prob[n - 1][suffix[n]]))
        gain.append(np.where(counts[n] >= min_count, g, -np.inf))

    def masks(threshold: float) -> list[np.ndarray]:
        keep = [None] * (order + 1)
        keep[1] = np.ones(v, dtype=bool)
        for n in range(order, 1, -1):
            k = gain[n] > threshold
            if n < order:  # every prefix and suffix of a kept longer n-gram
                k[keys[n + 1][keep[n + 1]] // v] = True
                k[suffix[n + 1][keep[n + 1]]] = True
            keep[n] = k
        return keep

    keep = masks(-np.inf)
    if max_ngrams and sum(int(k.sum()) for k in keep[2:]) > max_ngrams:
        finite = np.concatenate([g[np.isfinite(g)] for g in gain[2:]])
        lo, hi = float(finite.min()) - 1.0, float(finite.max())  # masks(hi) keeps none, masks(lo) too many
        for _ in range(40):
            mid = (lo + hi) / 2
            if sum(int(k.sum()) for k in masks(mid)[2:]) > max_ngrams:
                lo = mid
            else:
                hi = mid
        keep = masks(hi)
    return keep


def finish(keys, prob, suffix, keep, vocab: list[str]) -> NgramModel:
    """Drop the pruned n-grams, re-index, and recompute back-offs so every context's distribution sums to one:
    b(h) = (1 - sum of kept p(w | h)) / (1 - sum of the same words' p(w | h'))."""
    v, order = len(vocab), len(keys) - 1
    new_keys, kept_prob, backoff = [None, keys[1]], [None, prob[1]], [None] * (order + 1)
    index = [None, np.arange(v)]  # old index -> new index, per order
    for n in range(2, order + 1):
        k = keep[n]
        index.append(np.cumsum(k) - 1)
        ctx = index[n - 1][keys[n][k] // v]
        new_keys.append(ctx * v + keys[n][k] % v)
        p_hi = prob[n][k]
        p_lo = kept_prob[n - 1][index[n - 1][suffix[n][k]]]
        kept_prob.append(p_hi)
        m = len(new_keys[n - 1])
        num = 1.0 - np.bincount(ctx, weights=p_hi, minlength=m)
        den = 1.0 - np.bincount(ctx, weights=p_lo, minlength=m)
        backoff[n - 1] = np.log10(np.maximum(num, 1e-12) / np.maximum(den, 1e-12))
    with np.errstate(divide="ignore"):
        logprob = [None] + [np.where(p > 0, np.log10(p), -99.0) for p in kept_prob[1:]]
    return NgramModel(vocab, new_keys, logprob, backoff)


MAX_REPEAT = 1000


def weighted_path(spec: str) -> tuple[str, int]:
    """'PATH@N' reads PATH N times (weights in-domain text against a large general corpus); a path that exists
    as written is never split."""
    m = re.fullmatch(r"(.+)@(\d+)", spec)
    if m is None or os.path.exists(spec):
        return spec, 1
    if not 1 <= int(m.group(2)) <= MAX_REPEAT:
        raise ValueError(f"{spec}: the repeat count must be from 1 to {MAX_REPEAT}")
    return m.group(1), int(m.group(2))


def read_sentences(paths: list[str], exclude=None):
    """Normalised sentences from text files (one per line; .xz and .gz are unpacked) and manifests (.jsonl:
    their transcripts), without those `exclude` rejects; 'PATH@N' repeats a file N times."""
    for spec in paths:
        path, times = weighted_path(spec)
        for _ in range(times):
            lines = (item["text"] for item in read_manifest(path)) if path.endswith(".jsonl") else _lines(path)
            for line in lines:
                text = normalize_text(line)
                if text and (exclude is None or exclude(text)):
                    yield text


def _lines(path: str):
    opener = lzma.open if path.endswith(".xz") else gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            yield from f
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None
    except (OSError, EOFError, lzma.LZMAError) as e:
        raise ValueError(f"{path}: {getattr(e, 'strerror', None) or e}") from None


def build(sentences, order: int = 3, vocab_size: int = 0, min_count: int = 1, max_ngrams: int = 0) -> NgramModel:
    """sentences: a function returning an iterable of normalised sentences (it is read twice)."""
    if order < 2:
        raise ValueError("order must be at least 2 (KenLM and the beam search need bigrams)")
    word_counts = Counter()
    for line in sentences():
        word_counts.update(line.split())
    if not word_counts:
        raise ValueError("no text to build a language model from")
    vocab = choose_vocabulary(word_counts, vocab_size)
    stream = _stream(sentences(), vocab)
    keys, counts = count_ngrams(stream, len(vocab), order)
    del stream
    prob, gamma, suffix = estimate(keys, counts, len(vocab))
    keep = prune(keys, counts, prob, gamma, suffix, len(vocab), min_count, max_ngrams)
    return finish(keys, prob, suffix, keep, vocab)


def write_arpa(model: NgramModel, path: str) -> None:
    v = len(model.vocab)
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n, c in model.counts().items():
            f.write(f"ngram {n}={c}\n")
        texts = model.vocab
        for n in range(1, model.order + 1):
            f.write(f"\n\\{n}-grams:\n")
            if n > 1:
                prefix, last = model.keys[n] // v, model.keys[n] % v
                texts = [f"{texts[p]} {model.vocab[w]}" for p, w in zip(prefix.tolist(), last.tolist())]
            lp = model.logprob[n].tolist()
            if n < model.order:
                bo = model.backoff[n].tolist()
                f.writelines(f"{p:.6f}\t{t}\t{b:.6f}\n" for p, t, b in zip(lp, texts, bo))
            else:
                f.writelines(f"{p:.6f}\t{t}\n" for p, t in zip(lp, texts))
        f.write("\n\\end\\\n")


def excluded_sentences(transcripts, span: int = 10, whole: int = 6):
    """A filter for LM text: False for a sentence that shares `span` words in a row with a transcript, contains
    a transcript of `whole` or more words, or equals a shorter one (the rule the books corpus was cut by), so a
    model evaluated on those transcripts has not read them."""
    spans, equal = set(), set()
    for t in transcripts:
        w = tuple(t.split())
        if len(w) >= span:
            spans.update(w[i : i + span] for i in range(len(w) - span + 1))
        elif len(w) >= whole:
            spans.add(w)
        elif w:
            equal.add(w)
    lengths = sorted({len(s) for s in spans})

    def keep(sentence: str) -> bool:
        w = tuple(sentence.split())
        if w in equal:
            return False
        return not any(w[i : i + n] in spans for n in lengths for i in range(len(w) - n + 1))

    return keep
