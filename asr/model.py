"""onnxruntime execution of a streaming acoustic model: features plus its (opaque) state in, log-probs and the
next state out; the graph's state inputs and their shapes come from the model file (metadata asr.states)."""

from __future__ import annotations

import os

import numpy as np

from .messages import first_line
from .metadata import ModelInfo

# onnxruntime >= 1.29 sends usage telemetry from Linux unless told not to (and warns when $HOME is read-only);
# a recognizer people run on private recordings sends nothing. Set before onnxruntime is first imported.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


class ModelError(Exception):
    """The model file cannot be used; one line for users."""


def choose_providers(device: str = "auto") -> list[str]:
    """CUDA only when it is listed and its libraries really load; otherwise CPU, silently."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available and _cuda_loads():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise ModelError("CUDA was requested but onnxruntime cannot use it here (no GPU or CUDA libraries missing)")
    return ["CPUExecutionProvider"]


def _cuda_loads() -> bool:
    """True when the GPU driver and onnxruntime's CUDA provider library (with its CUDA deps) load."""
    import ctypes

    import onnxruntime as ort

    capi = os.path.join(os.path.dirname(ort.__file__), "capi")
    names = (["nvcuda.dll"] if os.name == "nt" else ["libcuda.so.1"]) + [
        os.path.join(capi, n) for n in (("onnxruntime_providers_shared.dll", "onnxruntime_providers_cuda.dll")
                                        if os.name == "nt" else
                                        ("libonnxruntime_providers_shared.so", "libonnxruntime_providers_cuda.so"))]
    try:
        for name in names:
            ctypes.CDLL(name, mode=getattr(os, "RTLD_LAZY", 0) | ctypes.RTLD_GLOBAL)
        return True
    except OSError:
        return False


class OnnxAcousticModel:
    def __init__(self, path: str, device: str = "auto", threads: int = 0):
        import onnxruntime as ort

        if not os.path.isfile(path):
            raise ModelError(f"{path}: model file not found")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # warnings about unused providers are noise for users
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        providers = choose_providers(device)
        try:
            self.session = ort.InferenceSession(path, opts, providers=providers)
            self.info = ModelInfo.from_props(self.session.get_modelmeta().custom_metadata_map)
        except Exception as e:
            raise ModelError(f"{path}: not a usable model ({first_line(e)})") from None
        self.path = path
        self.providers = self.session.get_providers()
        self._check_contract()

    def _check_contract(self) -> None:
        """Refuse at load, not on every stream, a graph whose inputs, outputs or sizes are not what its
        metadata promises: inputs features [N, T, n_mels] and each declared state; outputs log_probs
        [N, T / stack, len(vocab)] and NAME_out for each state NAME, of its input's shape and type."""
        i = self.info
        specs = {s.name: s for s in i.states}
        inputs = {x.name: x for x in self.session.get_inputs()}
        if set(inputs) != {"features", *specs}:
            raise ModelError(f"{self.path}: model inputs are {sorted(inputs)}, expected {sorted({'features', *specs})}")
        self._dtypes = {}
        for name, x in inputs.items():
            dims = (None, None, i.feature.n_mels) if name == "features" else specs[name].shape
            dtype = _DTYPES.get(x.type) if name != "features" or x.type == "tensor(float)" else None
            if dtype is None or len(x.shape) != len(dims) or any(
                    isinstance(got, int) and want is not None and got != want for got, want in zip(x.shape, dims)):
                want = [d if d is not None else "*" for d in dims]
                raise ModelError(f"{self.path}: model input {name} is {x.type} {x.shape}, expected "
                                 f"{'float' if name == 'features' else 'a number tensor'} {want}")
            self._dtypes[name] = dtype
        self._state_names = [s.name for s in i.states]
        self._output_names = ["log_probs"] + [n + "_out" for n in self._state_names]
        outputs = {x.name: x for x in self.session.get_outputs()}
        if set(outputs) != set(self._output_names):
            raise ModelError(f"{self.path}: model outputs are {sorted(outputs)}, expected {sorted(self._output_names)}")
        shape = outputs["log_probs"].shape
        width = shape[-1] if shape else None
        if isinstance(width, int) and width != len(i.vocab):
            raise ModelError(f"{self.path}: model outputs {width} scores per step but its vocabulary has "
                             f"{len(i.vocab)} tokens")
        # One real call at the streaming chunk size and one at a single step: what every stream will do.
        for steps in sorted({1, i.chunk_steps}):
            state = self.initial_state(1)
            try:
                lp, out = self.step(np.zeros((1, steps * i.stack, i.feature.n_mels), np.float32), state)
            except Exception as e:
                raise ModelError(f"{self.path}: model fails on a {steps}-step chunk ({first_line(e)})") from None
            want = {"log-probs": ((1, steps, len(i.vocab)), lp)}
            want.update({n + "_out": (state.arrays[n].shape, out.arrays[n]) for n in self._state_names})
            for name, (shape, got) in want.items():
                if tuple(np.shape(got)) != tuple(shape):
                    raise ModelError(f"{self.path}: model output {name} has shape {list(np.shape(got))} for a "
                                     f"{steps}-step chunk, expected {list(shape)} (vocabulary of {len(i.vocab)}, "
                                     f"stack {i.stack})")
            for n in self._state_names:
                if out.arrays[n].dtype != state.arrays[n].dtype:
                    raise ModelError(f"{self.path}: model output {n}_out is {out.arrays[n].dtype}, its input {n} "
                                     f"{state.arrays[n].dtype}")
            if not np.isfinite(lp).all():
                raise ModelError(f"{self.path}: model outputs NaN or infinity: its weights are not finite")

    def initial_state(self, n: int = 1) -> "ModelState":
        """The state of n fresh streams: zeros of every declared shape."""
        return ModelState(n, {s.name: np.zeros(s.shape_for(n), self._dtypes[s.name]) for s in self.info.states})

    def step(self, features: np.ndarray, state: "ModelState") -> tuple[np.ndarray, "ModelState"]:
        """features [N, T, F] (T a multiple of stack) and the state of N streams -> log_probs [N, T/stack, V] and
        their next state."""
        log_probs, *out = self.session.run(self._output_names,
                                           {"features": features.astype(np.float32, copy=False), **state.arrays})
        return log_probs, ModelState(state.n, dict(zip(self._state_names, out)))

    def stack_states(self, states: list["ModelState"]) -> "ModelState":
        """Many streams' states -> one state for a batched step (in that order)."""
        return ModelState(sum(st.n for st in states), {
            s.name: np.concatenate([st.arrays[s.name] for st in states], axis=s.batch_axis) for s in self.info.states})

    def unstack_states(self, state: "ModelState") -> list["ModelState"]:
        """A batched state -> one state per stream, each its own copy."""
        return [ModelState(1, {s.name: np.take(state.arrays[s.name], [k], axis=s.batch_axis) for s in self.info.states})
                for k in range(state.n)]


class ModelState:
    """The state of n streams, opaque outside this module (what it holds is the graph's business: its state
    inputs by name, batch included)."""

    __slots__ = ("n", "arrays")

    def __init__(self, n: int, arrays: dict[str, np.ndarray]):
        self.n, self.arrays = n, arrays


_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
           "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(bool)": np.bool_}

