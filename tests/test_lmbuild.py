"""The numpy n-gram builder: modified Kneser-Ney that sums to one after pruning, scored alike by KenLM (ARPA),
the pure-Python ARPA reader and asr's compact binary format."""

import numpy as np
import pytest

from asr import ngram
from asr.arpa import ArpaModel
from asr.lmbuild import build, excluded_sentences, write_arpa

WORDS = "the cat sat on a mat dog ran and big small red house".split()


def corpus(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, 9))) for _ in range(n)]


@pytest.mark.parametrize("order,max_ngrams,min_count", [(3, 0, 1), (4, 0, 1), (4, 1500, 1), (5, 0, 2)])
def test_distributions_sum_to_one_and_all_readers_agree(tmp_path, order, max_ngrams, min_count):
    text = corpus()
    model = build(lambda: text, order=order, max_ngrams=max_ngrams, min_count=min_count)
    if max_ngrams:
        assert sum(c for n, c in model.counts().items() if n > 1) <= max_ngrams
    write_arpa(model, str(tmp_path / "lm.arpa"))
    ngram.write(model, str(tmp_path / "lm.npz"))
    arpa, compact = ArpaModel(str(tmp_path / "lm.arpa")), ngram.CompactModel(str(tmp_path / "lm.npz"))
    rng = np.random.default_rng(1)
    vocab = [w for w in model.vocab if w != "<s>"]
    for _ in range(20):
        history = ("<s>", *rng.choice(WORDS, size=rng.integers(0, order)))[-(order - 1):]
        assert abs(sum(10 ** arpa.score(history, w)[0] for w in vocab) - 1) < 1e-5
    kenlm = pytest.importorskip("kenlm")
    k = kenlm.Model(str(tmp_path / "lm.arpa"))
    for sentence in text[:100] + ["zebra the cat", "the unknownword sat"]:
        ks, a_state, c_state = kenlm.State(), arpa.begin(), compact.begin()
        k.BeginSentenceWrite(ks)
        for w in sentence.split() + ["</s>"]:
            out = kenlm.State()
            expected = k.BaseScore(ks, w, out)
            ks = out
            got_arpa, a_state = arpa.score(a_state, w)
            got_compact, c_state = compact.score(c_state, w)
            assert abs(expected - got_arpa) < 1e-4
            assert abs(expected - got_compact) < 0.05  # 8-bit quantised scores


def test_vocabulary_limit_maps_the_rest_to_unk(tmp_path):
    text = ["a a a b b c"] * 10
    model = build(lambda: text, order=2, vocab_size=2, min_count=1)
    assert model.vocab == ["<unk>", "<s>", "</s>", "a", "b"]
    ngram.write(model, str(tmp_path / "lm.npz"))
    compact = ngram.CompactModel(str(tmp_path / "lm.npz"))
    assert compact.words == {"a", "b"}
    assert compact.score(compact.begin(), "c")[0] == compact.score(compact.begin(), "<unk>")[0]


def test_order_one_and_empty_text_are_refused():
    with pytest.raises(ValueError, match="at least 2"):
        build(lambda: ["a b"], order=1)
    with pytest.raises(ValueError, match="no text"):
        build(lambda: [], order=3)


def test_evaluation_text_is_kept_out():
    keep = excluded_sentences(["one two three four five six seven eight nine ten eleven", "yes", "turn the light on now please"])
    assert not keep("and then one two three four five six seven eight nine ten it said")
    assert not keep("yes") and keep("yes it is")
    assert not keep("i said turn the light on now please")
    assert keep("one two three four five six seven eight nine")


def test_a_damaged_compact_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "lm.npz"
    np.savez(bad, meta=np.array('{"format": "other"}'))
    with pytest.raises(ValueError, match="not a readable asr n-gram model"):
        ngram.CompactModel(str(bad))


def test_build_lm_script_writes_where_asr_looks(tmp_path, monkeypatch):
    """scripts/build_lm.sh builds the book LM from a corpus folder into $ASR_LM, and asr then decodes with it."""
    import json
    import lzma
    import os
    import subprocess

    from asr.lm import LanguageModel
    from asr.recognizer import BUNDLED_MODEL, default_lm_for
    from conftest import ROOT

    data = tmp_path / "data"
    (data / "text" / "books").mkdir(parents=True)
    with lzma.open(data / "text" / "books" / "books.txt.xz", "wt") as f:
        f.write("the birch canoe slid on the smooth planks\nglue the sheet to the dark blue background\n" * 5)
    (data / "text" / "sentences.txt").write_text("it is easy to tell the depth of a well\n" * 5)
    (data / "train.jsonl").write_text(json.dumps({"audio": "a.wav", "text": "rice is often served in round bowls"}) + "\n")
    (data / "dev.jsonl").write_text(json.dumps({"audio": "b.wav", "text": "four hours of steady work faced us"}) + "\n")
    out = tmp_path / "cache" / "book.npz"
    env = {**os.environ, "DATA": str(data), "ASR_LM": str(out)}
    r = subprocess.run([str(ROOT / "scripts" / "build_lm.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert LanguageModel(str(out)).is_word("canoe")
    monkeypatch.setenv("ASR_LM", str(out))
    assert default_lm_for(BUNDLED_MODEL) == str(out)
