"""`asr lm build`: a word n-gram language model (interpolated Kneser-Ney) written as ARPA.

Pure Python, so no LM toolkit has to be compiled; the result loads with the `kenlm` module or `asr.arpa`.
Probabilities are interpolated Kneser-Ney; n-grams seen fewer than `min_count` times are pruned
(above unigrams) and every context's backoff weight is recomputed so each distribution sums to one.
"""

from __future__ import annotations

import math
import os
from collections import Counter, defaultdict

BOS, EOS, UNK = "<s>", "</s>", "<unk>"


def _discount(counts: Counter) -> float:
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 + n2 else 0.5


def build_arpa(sentences, path: str, order: int = 3, min_count: int = 2) -> dict:
    """Count, smooth, prune and write; returns the number of n-grams per order."""
    if order < 1:
        raise ValueError("order must be at least 1")
    counts = [Counter() for _ in range(order + 1)]  # counts[n][ngram tuple]
    for line in sentences:
        words = [BOS, *line.split(), EOS]
        if len(words) == 2:
            continue
        for n in range(1, order + 1):
            for i in range(max(0, 1 if n == 1 else 0), len(words) - n + 1):
                counts[n][tuple(words[i : i + n])] += 1
    if not counts[1]:
        raise ValueError("no text to build a language model from")
    # Lower orders use continuation counts (how many distinct words precede), except after <s>.
    kn = [Counter() for _ in range(order + 1)]
    kn[order] = counts[order]
    for n in range(order, 1, -1):
        for gram in counts[n]:
            kn[n - 1][gram[1:]] += 1
        for gram, c in counts[n - 1].items():
            if gram[0] == BOS:
                kn[n - 1][gram] = c
    probs: list[dict] = [dict() for _ in range(order + 1)]
    # Unigrams: continuation distribution, with <unk> given the mass of a singleton.
    total = sum(v for g, v in kn[1].items() if g != (BOS,)) + 1
    for (w,), c in kn[1].items():
        if w != BOS:
            probs[1][(w,)] = c / total
    probs[1][(UNK,)] = 1 / total
    for n in range(2, order + 1):
        d = _discount(kn[n])
        ctx_total, ctx_types = Counter(), Counter()
        for gram, c in kn[n].items():
            ctx_total[gram[:-1]] += c
            ctx_types[gram[:-1]] += 1
        for gram, c in kn[n].items():
            if n > 1 and counts[n][gram] < min_count and gram[0] != BOS:
                continue
            ctx = gram[:-1]
            lower = _prob(probs, gram[1:])
            gamma = d * ctx_types[ctx] / ctx_total[ctx]
            probs[n][gram] = max(c - d, 0) / ctx_total[ctx] + gamma * lower
    backoff: list[dict] = [dict() for _ in range(order + 1)]
    for n in range(2, order + 1):
        kept_p, kept_lower = defaultdict(float), defaultdict(float)
        for gram, p in probs[n].items():
            kept_p[gram[:-1]] += p
            kept_lower[gram[:-1]] += _prob(probs, gram[1:])
        for ctx in kept_p:
            if ctx in probs[n - 1] or ctx == (BOS,) or n - 1 == 1:
                num, den = max(1 - kept_p[ctx], 1e-9), max(1 - kept_lower[ctx], 1e-9)
                backoff[n - 1][ctx] = num / den
    probs[1][(BOS,)] = 0.0
    _write(path, probs, backoff, order)
    return {n: len(probs[n]) for n in range(1, order + 1)}


def _prob(probs, gram) -> float:
    """Backed-off probability of gram from the (already built) lower orders."""
    if gram in probs[len(gram)]:
        return probs[len(gram)][gram]
    if len(gram) == 1:
        return probs[1][(UNK,)]
    return _prob(probs, gram[1:])  # contexts' backoff weights are applied when writing ARPA


def _write(path: str, probs, backoff, order: int) -> None:
    tmp = f"{path}.part"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("\\data\\\n")
        for n in range(1, order + 1):
            f.write(f"ngram {n}={len(probs[n])}\n")
        for n in range(1, order + 1):
            f.write(f"\n\\{n}-grams:\n")
            for gram, p in sorted(probs[n].items()):
                lp = -99.0 if p <= 0 else math.log10(p)
                line = f"{lp:.6f}\t{' '.join(gram)}"
                if n < order and gram in backoff[n]:
                    line += f"\t{math.log10(backoff[n][gram]):.6f}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    os.replace(tmp, path)
