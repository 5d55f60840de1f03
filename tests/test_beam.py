import math
import sys

import numpy as np
import pytest

from asr.beam import BeamConfig, BeamDecoder, parse_hotwords
from asr.decoding import GreedyDecoder
from asr.vocab import Vocabulary

V = Vocabulary()


def frames(spec):
    """spec: list of {token: prob} per step ('_' = blank); the rest of the mass spread thinly."""
    lp = np.full((len(spec), len(V)), 1e-4)
    for t, probs in enumerate(spec):
        for ch, p in probs.items():
            lp[t, 0 if ch == "_" else V.tokens.index(ch)] = p
    lp /= lp.sum(axis=1, keepdims=True)
    return np.log(lp).astype(np.float32)


def spell(text, p=0.95):
    out = []
    for ch in text:
        out += [{ch: p}, {"_": p}]
    return out


def decode(lp, **kw):
    d = BeamDecoder(V, BeamConfig(**{k: v for k, v in kw.items() if k != "lm"}), kw.get("lm"))
    d.accept(lp)
    d.finalize()
    return d.text


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    pytest.importorskip("kenlm")
    from asr.lm import LanguageModel
    from asr.lmbuild import build, write_arpa

    path = tmp_path_factory.mktemp("lm") / "lm.arpa"
    text = ["the cat sat on the mat", "the cat ate", "a cat and a dog", "the dog sat"] * 5
    write_arpa(build(lambda: text, order=3, min_count=1), str(path))
    return LanguageModel(str(path))


def test_beam_without_lm_matches_greedy_on_peaky_output():
    rng = np.random.default_rng(0)
    for _ in range(5):
        text = "".join(rng.choice(list("abc de")) for _ in range(12)).strip()
        lp = frames(spell(text))
        g = GreedyDecoder(V)
        g.accept(lp)
        assert decode(lp) == g.text == " ".join(text.split())


def test_lm_prefers_the_in_vocabulary_word(lm):
    # Acoustically "the cet sat" is a little more likely than "the cat sat".
    spec = spell("the c") + [{"e": 0.55, "a": 0.45}, {"_": 0.95}] + spell("t sat")
    lp = frames(spec)
    assert decode(lp) == "the cet sat"
    assert decode(lp, lm=lm, lm_weight=1.0, word_bonus=2.0) == "the cat sat"


def test_hotwords_change_the_result_where_they_should():
    spec = [{"r": 0.4, "b": 0.6}, {"_": 0.95}] + spell("ob is here")
    lp = frames(spec)
    assert decode(lp) == "bob is here"
    assert decode(lp, hotwords={"rob": 3.0}) == "rob is here"
    assert decode(lp, hotwords={"robert": 3.0}) == "bob is here"  # a prefix alone earns nothing


def test_streaming_beam_equals_offline(lm):
    rng = np.random.default_rng(1)
    lp = frames(spell("the cat sat on a mat", p=0.7))
    lp = np.log(np.exp(lp) * rng.uniform(0.5, 1.5, lp.shape))
    lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
    cfg = BeamConfig(lm_weight=0.8)
    offline = BeamDecoder(V, cfg, lm)
    offline.accept(lp)
    for _ in range(3):
        d = BeamDecoder(V, cfg, lm)
        i = 0
        while i < len(lp):
            n = int(rng.integers(1, 7))
            d.accept(lp[i : i + n])
            i += n
        assert d.text == offline.text
        assert [(t.id, t.step) for t in d.tokens] == [(t.id, t.step) for t in offline.tokens]


def test_parse_hotwords():
    assert parse_hotwords(["Kubernetes:7.5", "onnx"]) == {"kubernetes": 7.5, "onnx": 8.0}
    for empty in ("", "  ", ":5"):  # blank lines and comments are skipped in files, not on the command line
        with pytest.raises(ValueError, match="has no word"):
            parse_hotwords([empty])
    with pytest.raises(ValueError, match="bonus must be a number"):
        parse_hotwords(["x:y"])


def test_lm_build_and_beam_decoding_from_the_cli(tmp_path, any_model):
    pytest.importorskip("kenlm")
    from conftest import run_asr, sample_pairs

    text = tmp_path / "corpus.txt"
    text.write_text("".join(t + "\n" for _, t in sample_pairs()) * 3)
    lm_path = tmp_path / "lm.arpa"
    r = run_asr("lm", "build", text, "-o", lm_path, "--min-count", "1")
    assert r.returncode == 0 and "3-grams" in r.stdout
    assert lm_path.read_text().startswith("\\data\\")
    wav = sample_pairs()[0][0]
    r = run_asr("transcribe", wav, "--model", any_model, "--lm", lm_path, "--lm-weight", "0.8", "--hotword", "canoe:4")
    assert r.returncode == 0 and r.stderr == "" and r.stdout.strip()
    assert set(r.stdout.split()) <= set(text.read_text().split())  # the LM's words only
    r = run_asr("transcribe", wav, "--model", any_model, "--lm", lm_path, "--open-vocabulary")
    assert r.returncode == 0 and r.stderr == "" and r.stdout.strip()
    r = run_asr("transcribe", wav, "--model", any_model, "--lm", tmp_path / "missing.arpa")
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1


def test_with_an_lm_only_its_words_are_spelled(lm):
    # "cet" is acoustically best and the LM is given no weight: only the lexicon can overrule it.
    lp = frames(spell("the c") + [{"e": 0.7, "a": 0.3}, {"_": 0.95}] + spell("t sat"))
    assert decode(lp, lm=lm, lm_weight=0.0, word_bonus=0.0, lexicon=False) == "the cet sat"
    assert decode(lp, lm=lm, lm_weight=0.0, word_bonus=0.0) == "the cat sat"


def test_hotwords_pass_the_lexicon(lm):
    lp = frames(spell("the zorg sat"))
    assert "zorg" not in decode(lp, lm=lm)
    assert decode(lp, lm=lm, hotwords={"zorg": 2.0}) == "the zorg sat"


def test_the_lexicon_is_the_arpa_vocabulary(lm):
    assert lm.words == {"the", "cat", "sat", "on", "mat", "ate", "a", "and", "dog"}
    assert all(lm.is_prefix(p) for p in ("c", "ca", "cat")) and not lm.is_prefix("cet")


def test_pure_python_arpa_scores_equal_kenlm(lm):
    from asr.arpa import ArpaModel

    py = ArpaModel(lm.path)
    rng = np.random.default_rng(2)
    for _ in range(50):
        kenlm_state, py_state = lm.begin(), py.begin()
        for w in [*rng.choice(["the", "cat", "sat", "on", "mat", "dog", "zebra", "a", "and"], size=6), "</s>"]:
            expected, kenlm_state = lm.score(kenlm_state, str(w))
            got, py_state = py.score(py_state, str(w))
            assert abs(expected - got * math.log(10)) < 1e-4, w


def test_without_kenlm_an_arpa_lm_decodes_the_same(lm, monkeypatch, tmp_path):
    from asr.lm import LanguageModel

    monkeypatch.setitem(sys.modules, "kenlm", None)  # `import kenlm` now fails as on a runtime-only install
    pure = LanguageModel(lm.path)
    rng = np.random.default_rng(3)
    for _ in range(5):
        lp = frames(spell("the cat sat on a mat", p=0.6))
        lp = np.log(np.exp(lp) * rng.uniform(0.3, 1.7, lp.shape))
        lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
        for kw in ({}, {"lexicon": False, "lm_weight": 1.0}):
            assert decode(lp, lm=pure, **kw) == decode(lp, lm=lm, **kw)
    binary = tmp_path / "lm.binary"
    binary.write_bytes(b"mmap lm http://kheafield.com/code format version 5\0" + bytes(64))
    with pytest.raises(ValueError, match="binary KenLM model needs the kenlm module"):
        LanguageModel(str(binary))
    broken = tmp_path / "broken.arpa"
    broken.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-1.0\tthe\nnot-a-number\tcat\n\\end\\\n")
    with pytest.raises(ValueError, match="bad 1-gram line 'not-a-number"):
        LanguageModel(str(broken))


def test_a_segment_never_ends_on_a_word_the_lexicon_lacks(lm):
    # Every hypothesis is mid-word at the end ("the ca..."): the unfinished word is cut, not printed.
    d = BeamDecoder(V, BeamConfig(token_beam=3.0), lm)  # too narrow to finish "cat" from thin mass
    d.accept(frames(spell("the ca")))
    d.finalize()
    assert d.text.startswith("the") and set(d.text.split()) <= lm.words
    assert " ".join("".join(V.tokens[t.id] for t in d.tokens).split()) == d.text
    # and when nothing else is left, the unfinished word is cut (with its tokens), not printed
    d = BeamDecoder(V, BeamConfig(token_beam=3.0), lm)
    d.accept(frames(spell("the ca")))
    d.beams = {p: h for p, h in d.beams.items() if p.endswith("ca")}
    d.finalize()
    assert d.text == "the" and len(d.tokens) == len("the ")


def _arpa_variants(good: str) -> dict[str, str]:
    """Damaged copies of a valid ARPA text, each of which KenLM refuses."""
    head, _, body = good.partition("\n\\1-grams:")
    lines = good.splitlines()
    two = lines.index("\\2-grams:")
    return {
        "header-only": head + "\n",
        "count-mismatch": "\n".join(lines[:two - 2] + lines[two - 1:]) + "\n",  # one unigram fewer than declared
        "cut-short": good[: good.index("\\end\\")],
    }


@pytest.mark.parametrize("kind", ["header-only", "count-mismatch", "cut-short"])
def test_both_arpa_readers_refuse_the_same_damaged_files(lm, kind, tmp_path):
    """The pure-Python reader refuses what KenLM refuses, with one line naming the file."""
    import kenlm

    from asr.arpa import ArpaModel

    bad = tmp_path / f"{kind}.arpa"
    bad.write_text(_arpa_variants(open(lm.path).read())[kind])
    with pytest.raises(Exception):
        kenlm.Model(str(bad))
    with pytest.raises(ValueError, match=str(bad)) as e:
        ArpaModel(str(bad))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("beam", [2, 5, 16])
def test_pruning_changes_no_result(lm, beam):
    """_step skips hypotheses that cannot be kept: every hypothesis kept, its scores and tokens are the same."""
    rng = np.random.default_rng(beam)
    for n in range(6):
        lp = frames(spell(["the cat sat on the mat", "a dog ate the cat", "the zorg sat"][n % 3], p=0.5))
        lp = np.log(np.exp(lp) * rng.uniform(0.2, 1.8, lp.shape))
        lp -= np.log(np.exp(lp).sum(axis=1, keepdims=True))
        kw = [{}, {"lexicon": False}, {"hotwords": {"zorg": 3.0, "mat": -1.0}}][n % 3]
        runs = []
        for prune in (True, False):
            d = BeamDecoder(V, BeamConfig(beam=beam, token_beam=12.0, **kw), lm)
            d._prune = prune
            states = []
            for i in range(0, len(lp), 5):
                d.accept(lp[i : i + 5])
                states.append([(p, h.pb, h.pnb, h.lm, h.boost, h.last, h.tokens) for p, h in d.beams.items()])
            d.finalize()
            runs.append((states, d.text, d.tokens))
        assert runs[0] == runs[1]
