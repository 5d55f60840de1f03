"""The runtime's side of the state contract: a model's state is what its file declares (asr.states), opaque to
every caller; files written before asr.states keep loading as the LSTM's h and c."""

import json

import numpy as np
import pytest

from asr.metadata import ModelInfo, StateSpec
from asr.model import OnnxAcousticModel
from conftest import BUNDLED


@pytest.fixture(scope="module")
def props():
    if not BUNDLED.exists():
        pytest.skip("bundled model not built")
    return dict(OnnxAcousticModel(str(BUNDLED), device="cpu").session.get_modelmeta().custom_metadata_map)


def test_a_file_without_asr_states_declares_the_lstm_h_and_c(props):
    legacy = {k: v for k, v in props.items() if k != "asr.states"}  # as files written before the key were
    legacy.update({"asr.hidden": "7", "asr.state_size": "5", "asr.layers": "2"})
    info = ModelInfo.from_props(legacy)
    # asr.hidden named the cell size and asr.state_size the hidden size: h gets state_size, c gets hidden
    assert info.states == [StateSpec("h", (2, None, 5), 1), StateSpec("c", (2, None, 7), 1)]
    assert info.lookahead_steps == 0
    again = ModelInfo.from_props(info.to_props())
    assert again.states == info.states and "asr.hidden" not in info.to_props()
    assert json.loads(info.to_props()["asr.states"])[1] == {"name": "c", "shape": [2, None, 7], "batch_axis": 1}


@pytest.mark.parametrize("states, message", [
    ('[{"name": "h", "shape": [3, 512], "batch_axis": 1}]', "needs null at batch axis 1"),
    ('[{"name": "h", "shape": [null, 0], "batch_axis": 0}]', "shape[1] is 0"),
    ('[{"name": "features", "shape": [null], "batch_axis": 0}]', "not a state input name"),
    ('[{"name": "h", "shape": [null], "batch_axis": 0}, {"name": "h", "shape": [null], "batch_axis": 0}]',
     "not distinct"),
    ('{"h": 1}', "asr.states is not a list"),
    ('[{"name": "h", "shape": [null, 8192, 4096], "batch_axis": 0}]', "values per stream"),
])
def test_a_bad_state_declaration_is_one_line_naming_it(props, states, message):
    with pytest.raises(ValueError, match="asr.states") as e:
        ModelInfo.from_props({**props, "asr.states": states})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_lookahead_steps_is_read_and_bounded(props):
    assert ModelInfo.from_props({**props, "asr.lookahead_steps": "3"}).lookahead_steps == 3
    for bad in ("-1", "1.5", "1000"):
        with pytest.raises(ValueError, match="lookahead_steps"):
            ModelInfo.from_props({**props, "asr.lookahead_steps": bad})


def test_states_stack_and_unstack_along_their_own_batch_axes(bundled_model):
    model = OnnxAcousticModel(bundled_model, device="cpu")
    rng = np.random.default_rng(0)
    streams = []
    for _ in range(3):  # three streams in different states
        _, state = model.step(rng.standard_normal((1, 12, 80)).astype(np.float32), model.initial_state(1))
        streams.append(state)
    x = rng.standard_normal((3, 12, 80)).astype(np.float32)
    batched, state = model.step(x, model.stack_states(streams))
    for k, (alone_state, split) in enumerate(zip(streams, model.unstack_states(state))):
        alone, after = model.step(x[k : k + 1], alone_state)
        np.testing.assert_allclose(batched[k], alone[0], atol=1e-5)
        # the split state carries on exactly like the stream's own
        nxt = rng.standard_normal((1, 12, 80)).astype(np.float32)
        np.testing.assert_allclose(model.step(nxt, split)[0], model.step(nxt, after)[0], atol=1e-5)
