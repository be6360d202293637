"""Torch-free inference: onnxruntime sessions, batched search, the Transcriber API."""

from .options import DecodeOptions
from .prepare import AudioSlice
from .transcriber import Failure, NBest, Result, Segment, Transcriber
from .vad import VadOptions

__all__ = ["AudioSlice", "DecodeOptions", "Failure", "NBest", "Result", "Segment", "Transcriber", "VadOptions"]
