"""DecodeOptions lives in kdasr/decode_options.py (the model-dir spec, which export writes and the
runtime reads, embeds it); re-exported here, where the runtime has always offered it."""

from ..decode_options import METHODS, RESCORERS, DecodeOptions, given_fields

__all__ = ["METHODS", "RESCORERS", "DecodeOptions", "given_fields"]
