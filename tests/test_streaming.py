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


def test_batched_model_calls_equal_per_stream_calls(any_model):
    """The server's path: ready chunks of several streams in one model call, state split back."""
    rec = Recognizer.load(any_model, device="cpu")
    audios = [read_audio(str(w)) for w, _ in sample_pairs()]
    streams = [rec.stream() for _ in audios]
    batched = [[] for _ in audios]
    for s, a in zip(streams, audios):
        s.push(a)
    while True:
        ready = [(i, s.take_chunks(1)) for i, s in enumerate(streams)]
        ready = [(i, f) for i, f in ready if f is not None]
        if not ready:
            break
        h = np.concatenate([streams[i].h for i, _ in ready], axis=1)
        c = np.concatenate([streams[i].c for i, _ in ready], axis=1)
        lp, h, c = rec.model(np.stack([f for _, f in ready]), h, c)
        for k, (i, _) in enumerate(ready):
            batched[i] += streams[i].apply(lp[k], h[:, k : k + 1], c[:, k : k + 1])
    for i, s in enumerate(streams):
        batched[i] += s.finish()
        single = list(rec.transcribe(audios[i]))
        assert [r.text for r in batched[i] if r.final] == [r.text for r in single]
