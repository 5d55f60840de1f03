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


def _lm(tmp_path):
    from asr import ngram
    from asr.lm import LanguageModel
    from asr.lmbuild import build

    path = tmp_path / "lm.npz"
    ngram.write(build(lambda: ["the cat sat", "a cat ate"] * 3, order=2), str(path))
    return LanguageModel(str(path))


def test_greedy_and_beam_decoders_share_one_interface():
    from asr.beam import BeamDecoder

    lp = peaky(ids("__cc_aa_t  _ss_aa_tt"))
    for d in (GreedyDecoder(V), BeamDecoder(V)):
        d.accept(lp[:7])
        d.accept(lp[7:])
        d.finalize()
        assert (d.text, d.steps, d.last_nonblank_step) == ("cat sat", len(lp), 19)
        assert [t.step for t in d.tokens] == [2, 5, 8, 9, 12, 15, 18]
        d.reset()
        assert (d.text, d.tokens, d.steps) == ("", [], len(lp))


def test_one_factory_chooses_the_decoder_from_the_configuration(tmp_path):
    from asr.beam import BeamConfig, BeamDecoder
    from asr.decoders import DecodingConfig, make_decoder

    lm = _lm(tmp_path)
    greedy, beam = DecodingConfig(lm=None), DecodingConfig(lm=None, beam_search=True, beam=BeamConfig(beam=4))
    assert isinstance(make_decoder(greedy, V), GreedyDecoder)
    d = make_decoder(beam, V)
    assert isinstance(d, BeamDecoder) and d.cfg.beam == 4 and d.lm is None
    d = make_decoder(greedy, V, lm)  # an LM means beam search
    assert isinstance(d, BeamDecoder) and d.lm is lm
    assert isinstance(make_decoder(greedy, V, lm, use_lm=False), GreedyDecoder)  # a stream asking for no LM
    d = make_decoder(greedy, V, lm, hotwords={"rob": 3.0}, use_lm=False)  # ... but with hotwords of its own
    assert isinstance(d, BeamDecoder) and d.lm is None and d.cfg.hotwords == {"rob": 3.0}
    configured = DecodingConfig(lm=None, beam=BeamConfig(hotwords={"cat": 2.0}))
    d = make_decoder(configured, V, hotwords={"rob": 3.0})
    assert d.cfg.hotwords == {"cat": 2.0, "rob": 3.0} and configured.beam.hotwords == {"cat": 2.0}


def test_command_line_defaults_are_the_dataclass_defaults():
    from asr.cli import _decoding_config, build_parser
    from asr.decoders import DecodingConfig

    for command in ("transcribe", "live", "serve", "eval"):
        args = build_parser().parse_args([command] + (["x.wav"] if command in ("transcribe", "eval") else []))
        assert _decoding_config(args) == DecodingConfig()
        assert EndpointConfig(args.silence_after_speech, args.silence_without_speech, args.max_segment) == EndpointConfig()
    args = build_parser().parse_args(["transcribe", "x.wav", "--beam", "4", "--no-lm", "--hotword", "rob:3"])
    cfg = _decoding_config(args)
    assert (cfg.lm, cfg.beam_search, cfg.beam.beam, cfg.beam.hotwords) == (False, True, 4, {"rob": 3.0})


def test_load_keeps_its_beam_argument(any_model):
    """Recognizer.load(beam=BeamConfig(...)) asks for beam search with it; beam=None is the default decoding."""
    from asr.beam import BeamConfig, BeamDecoder
    from asr.decoding import GreedyDecoder
    from asr.recognizer import Recognizer

    assert isinstance(Recognizer.load(any_model, device="cpu", lm=None, beam=None).stream().decoder, GreedyDecoder)
    d = Recognizer.load(any_model, device="cpu", lm=None, beam=BeamConfig(beam=4)).stream().decoder
    assert isinstance(d, BeamDecoder) and d.cfg.beam == 4
