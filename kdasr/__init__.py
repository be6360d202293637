"""kdasr: seq2seq ASR distilled from a BERT teacher, exported to ONNX, run without torch.

    from kdasr import Transcriber
    t = Transcriber("demo-en")             # an installed model's name (`kdasr models`) or a model dir
    r = t.transcribe("talk.flac")          # one input -> one Result (or Failure); a list -> a list
    print(r.text, r.segments[0].start)
    t.transcribe(["a.wav", "b.wav"], beam=5, ctc_weight=0.3)   # DecodeOptions fields as keywords

The public types: Transcriber, Result, Failure, Segment, NBest, DecodeOptions, VadOptions, AudioSlice."""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and IDEs (py.typed); at run time the names load lazily below
    from .runtime import AudioSlice, DecodeOptions, Failure, NBest, Result, Segment, Transcriber, VadOptions, Word

__all__ = [
    "AudioSlice", "DecodeOptions", "Failure", "NBest", "Result", "Segment", "Transcriber", "VadOptions", "Word",
    "__version__",
]
_RUNTIME = {"AudioSlice", "DecodeOptions", "Failure", "NBest", "Result", "Segment", "Transcriber", "VadOptions", "Word"}


def __getattr__(name: str):
    # lazy, so `import kdasr` stays cheap and torch-free
    if name in _RUNTIME:
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'kdasr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _RUNTIME)
