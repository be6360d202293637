"""kdasr: seq2seq ASR distilled from a BERT teacher, exported to ONNX, run without torch."""

__version__ = "0.1.0"
