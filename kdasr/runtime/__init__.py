"""Torch-free inference: onnxruntime sessions, batched search, the Transcriber API."""

from .options import DecodeOptions
from .transcriber import Failure, Result, Transcriber

__all__ = ["DecodeOptions", "Failure", "Result", "Transcriber"]
