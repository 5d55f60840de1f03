import numpy as np

from asr.audio import read_audio
from asr.recognizer import Recognizer
from conftest import sample_pairs


def _feed(rec, samples, rng):
    stream, results, i = rec.stream(), [], 0
    while i < len(samples):
        n = int(rng.integers(1, 6000))
        results += stream.accept(samples[i : i + n])
        i += n
    return results + stream.finish()


def _finals(results):
    return [(r.text, r.start, r.end, [(w.text, w.start, w.end) for w in r.words]) for r in results if r.final]


def test_random_block_sizes_give_the_same_text_and_times_as_one_call(any_model):
    rec = Recognizer.load(any_model, device="cpu")
    wavs = [read_audio(str(w)) for w, _ in sample_pairs()]
    # Two utterances with a long pause between them: endpointing must split them identically too.
    samples = np.concatenate([wavs[0], np.zeros(16000 * 3, np.float32), wavs[1]])
    offline = _finals(list(rec.transcribe(samples)))
    assert offline
    rng = np.random.default_rng(3)
    for _ in range(3):
        assert _finals(_feed(rec, samples, rng)) == offline


def test_streaming_log_probs_equal_offline(any_model):
    rec = Recognizer.load(any_model, device="cpu")
    feats = rec.stream().frontend.accept(read_audio(str(sample_pairs()[0][0])))
    stack = rec.info.stack
    feats = feats[: len(feats) // stack * stack]
    whole, _, _ = rec.model(feats[None], *rec.model.initial_state())
    rng = np.random.default_rng(0)
    h, c = rec.model.initial_state()
    parts, i = [], 0
    while i < len(feats):
        n = int(rng.integers(1, 20)) * stack
        lp, h, c = rec.model(feats[None, i : i + n], h, c)
        parts.append(lp)
        i += n
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-4)


def test_partials_grow_into_the_final(any_model):
    rec = Recognizer.load(any_model, device="cpu")
    results = _feed(rec, read_audio(str(sample_pairs()[0][0])), np.random.default_rng(5))
    partials = [r for r in results if not r.final]
    finals = [r for r in results if r.final]
    assert partials and finals
    assert all(r.text for r in results)
    assert finals[-1].end <= len(read_audio(str(sample_pairs()[0][0]))) / 16000 + 0.1
