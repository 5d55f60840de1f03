"""onnxruntime execution of the acoustic model: one chunk of features plus LSTM state in, log-probs out."""

from __future__ import annotations

import os

import numpy as np

from .metadata import ModelInfo


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
        try:
            self.session = ort.InferenceSession(path, opts, providers=choose_providers(device))
            self.info = ModelInfo.from_props(self.session.get_modelmeta().custom_metadata_map)
        except ModelError:
            raise
        except Exception as e:
            raise ModelError(f"{path}: not a usable model ({str(e).splitlines()[0]})") from None
        self.path = path
        self.providers = self.session.get_providers()

    def initial_state(self, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        i = self.info
        return (np.zeros((i.layers, batch, i.state_size), np.float32), np.zeros((i.layers, batch, i.hidden), np.float32))

    def __call__(self, features: np.ndarray, h: np.ndarray, c: np.ndarray):
        """features [N, T, F] (T a multiple of stack) -> log_probs [N, T/stack, V], h, c."""
        return self.session.run(None, {"features": features.astype(np.float32, copy=False), "h": h, "c": c})
