"""Defaults decided once for the CLI, the Python API and the server (a top-level module with no
imports, so the CLI can show them in --help without loading numpy or onnxruntime)."""

# Voice-activity detection for `Transcriber(vad=...)`, `kdasr transcribe --vad/--no-vad` and
# `kdasr serve --vad/--no-vad` (KDASR_VAD): on, because the shipped models were trained on single
# sentences and decode long audio far better region by region (a 4.3-minute file: 38.5 % WER with
# VAD, 65.4 % without; issue 30). `kdasr eval`, `tune` and `bench` score manifest slices whole.
VAD_DEFAULT = True
# The model used when none is given (a name from `kdasr models`, or a directory); $KDASR_MODEL overrides.
MODEL_DEFAULT = "demo-en"
