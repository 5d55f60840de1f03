"""The bundled model, LM and samples, installed as the package data of asr.assets (see pyproject.toml)."""
