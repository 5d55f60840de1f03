import numpy as np

from asr.decoding import GreedyDecoder, greedy_text, tokens_to_words
from asr.endpoint import EndpointConfig
from asr.metrics import ErrorCounter, edit_distance
from asr.vocab import Vocabulary, normalize_text

V = Vocabulary()


def peaky(ids, v=len(V)):
    lp = np.full((len(ids), v), -20.0, np.float32)
    lp[np.arange(len(ids)), ids] = -0.01
    return lp


def ids(s):
    return [V.tokens.index(ch) if ch != "_" else 0 for ch in s]


def test_greedy_collapses_repeats_and_blanks():
    assert greedy_text(peaky(ids("hh_e_ll_lo__  _w_o")), V) == "hello wo"


def test_greedy_is_the_same_across_chunk_boundaries():
    lp = peaky(ids("__cc_aa_t  _ss_aa_tt"))
    for cut in range(1, len(lp)):
        d = GreedyDecoder(V)
        d.accept(lp[:cut])
        d.accept(lp[cut:])
        assert d.text == "cat sat"
        assert [t.step for t in d.tokens] == [2, 5, 8, 9, 12, 15, 18]


def test_word_times_follow_token_steps():
    d = GreedyDecoder(V)
    d.accept(peaky(ids("_hi_ _yo_")))
    words = tokens_to_words(d.tokens, V, step_seconds=0.03)
    assert [(w.text, w.start, w.end) for w in words] == [("hi", 0.03, 0.09), ("yo", 0.18, 0.24)]
    assert all(0.95 < w.confidence <= 1.0 for w in words)


def test_endpoint_rules():
    ep = EndpointConfig(silence_after_speech=1.0, silence_without_speech=2.4, max_segment=20)
    assert not ep.is_endpoint(True, 0.9, 5)
    assert ep.is_endpoint(True, 1.0, 5)
    assert not ep.is_endpoint(False, 2.3, 5)
    assert ep.is_endpoint(False, 2.4, 5)
    assert ep.is_endpoint(True, 0.0, 20.0)


def test_text_normalisation_and_error_rates():
    assert normalize_text("Hello, World!  It’s  OK.") == "hello world it's ok"
    assert edit_distance("kitten", "sitting") == 3
    e = ErrorCounter()
    e.add("the cat sat", "the cat sat")
    e.add("a b c d", "a x c")
    assert e.wer == 2 / 7
