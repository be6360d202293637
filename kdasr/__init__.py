"""kdasr: seq2seq ASR distilled from a BERT teacher, exported to ONNX, run without torch."""

__version__ = "0.1.0"

__all__ = ["DecodeOptions", "Transcriber", "__version__"]


def __getattr__(name: str):
    # lazy, so `import kdasr` stays cheap and torch-free
    if name in ("Transcriber", "DecodeOptions"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(name)
