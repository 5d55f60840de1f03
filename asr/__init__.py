"""Streaming speech recognition: LSTM-CTC acoustic model run with onnxruntime.

`import asr` is cheap; the heavy modules load on first use of the names below.
"""

__version__ = "0.1.0"

_LAZY = {
    "Recognizer": "recognizer", "Stream": "recognizer", "default_lm_path": "recognizer",
    "Result": "results", "Word": "results", "Token": "results", "DecodingConfig": "decoders",
    "BeamConfig": "beam", "EndpointConfig": "endpoint", "FeatureConfig": "features",
    "AudioError": "audio", "ModelError": "model", "VadConfig": "vad",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'asr' has no attribute {name!r}")


__all__ = list(_LAZY)
