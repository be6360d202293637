"""Torch-free inference: onnxruntime sessions, batched search, the Transcriber API."""

from ..spec.decode_options import DecodeOptions
from .align import Word
from .prepare import AudioSlice
from .transcriber import Failure, NBest, Result, Segment, Transcriber
from .vad import VadOptions

__all__ = ["AudioSlice", "DecodeOptions", "Failure", "NBest", "Result", "Segment", "Transcriber", "VadOptions", "Word"]
