"""onnxruntime execution of the acoustic model: one chunk of features plus LSTM state in, log-probs out."""

from __future__ import annotations

import os

import numpy as np

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
            raise ModelError(f"{path}: not a usable model ({_first_line(e)})") from None
        self.path = path
        self.providers = self.session.get_providers()
        self._check_contract()

    def _check_contract(self) -> None:
        """Refuse at load, not on every stream, a graph whose inputs, outputs or sizes are not what its
        metadata promises: named inputs features [N, T, n_mels], h [layers, N, state], c [layers, N, hidden];
        three outputs, log-probs [N, T / stack, len(vocab)] then the two states."""
        i = self.info
        expected = {"features": (None, None, i.feature.n_mels), "h": (i.layers, None, i.state_size),
                    "c": (i.layers, None, i.hidden)}
        inputs = {x.name: x for x in self.session.get_inputs()}
        if set(inputs) != set(expected):
            raise ModelError(f"{self.path}: model inputs are {sorted(inputs)}, expected ['c', 'features', 'h']")
        for name, dims in expected.items():
            x = inputs[name]
            if x.type != "tensor(float)" or len(x.shape) != 3 or any(
                    isinstance(got, int) and want is not None and got != want for got, want in zip(x.shape, dims)):
                want = [d if d is not None else "*" for d in dims]
                raise ModelError(f"{self.path}: model input {name} is {x.type} {x.shape}, expected float {want}")
        outputs = self.session.get_outputs()
        if len(outputs) != 3:
            raise ModelError(f"{self.path}: model has {len(outputs)} outputs, expected 3 (log-probs, h, c)")
        width = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(width, int) and width != len(i.vocab):
            raise ModelError(f"{self.path}: model outputs {width} scores per step but its vocabulary has "
                             f"{len(i.vocab)} tokens")
        # One real call at the streaming chunk size and one at a single step: what every stream will do.
        for steps in sorted({1, i.chunk_steps}):
            h, c = self.initial_state(1)
            try:
                lp, h2, c2 = self(np.zeros((1, steps * i.stack, i.feature.n_mels), np.float32), h, c)
            except Exception as e:
                raise ModelError(f"{self.path}: model fails on a {steps}-step chunk ({_first_line(e)})") from None
            want = {"log-probs": ((1, steps, len(i.vocab)), lp), "h": (h.shape, h2), "c": (c.shape, c2)}
            for name, (shape, got) in want.items():
                if tuple(np.shape(got)) != tuple(shape):
                    raise ModelError(f"{self.path}: model output {name} has shape {list(np.shape(got))} for a "
                                     f"{steps}-step chunk, expected {list(shape)} (vocabulary of {len(i.vocab)}, "
                                     f"stack {i.stack})")
            if not np.isfinite(lp).all():
                raise ModelError(f"{self.path}: model outputs NaN or infinity: its weights are not finite")

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        i = self.info
        return (np.zeros((i.layers, batch, i.state_size), np.float32), np.zeros((i.layers, batch, i.hidden), np.float32))

    def __call__(self, features: np.ndarray, h: np.ndarray, c: np.ndarray):
        """features [N, T, F] (T a multiple of stack) -> log_probs [N, T/stack, V], h, c."""
        return self.session.run(None, {"features": features.astype(np.float32, copy=False), "h": h, "c": c})


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
