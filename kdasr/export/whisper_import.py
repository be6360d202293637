"""`kdasr import-whisper tiny.en|base|PATH --out DIR`: a kdasr model dir for a complete whisper model.

Graphs from whisper_graphs.py; the tokenizer as `whisper_vocab.json` (kdasr/whisper_tokenizer.py);
the prompt (<|startoftranscript|>, for a multilingual model <|en|> <|transcribe|>) in the decoder
spec, fed by the generic scorer before the search starts from <|notimestamps|> (special_ids.bos);
suppressed tokens as faster-whisper's defaults (config.json's suppress_ids, the task/start specials;
begin: suppress_ids_begin) baked into the step graph. The recommended decoding is faster-whisper's:
beam 5, score / length (length_penalty 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelError
from ..models.whisper_weights import SOURCES, CT2Checkpoint, locate, parse_model_bin, read_whisper
from ..spec.decode_options import DecodeOptions
from ..spec.graph_spec import SpecialIds
from ..spec.modelspec import ModelSpec
from ..whisper_tokenizer import VOCAB_FILE, WhisperTokenizer
from .model_dir import write_model_json
from .onnx_export import export_graph
from .quantize import add_variants
from .whisper_graphs import WhisperDecoderStepGraph, WhisperEncoderGraph, graph_specs, model_name_of

NAMES = {"tiny.en": "whisper-tiny.en", "base": "whisper-base"}
# faster-whisper's get_suppressed_tokens adds these to the non-speech tokens (config.json suppress_ids)
TASK_SPECIALS = ("<|transcribe|>", "<|translate|>", "<|startoftranscript|>", "<|startofprev|>", "<|startoflm|>",
                 "<|nospeech|>", "<|nocaptions|>")
RECOMMENDED = {"beam": 5, "length_penalty": 1.0, "max_len_ratio": 0.3}  # 448 tokens / 1500 frames


def load_source(source: str) -> tuple[CT2Checkpoint, Path]:
    """The checkpoint and the folder with its config.json and vocabulary file."""
    if source in NAMES or source in SOURCES:
        name = NAMES.get(source, source)
        ckpt = read_whisper(name)
        return ckpt, locate(SOURCES[name])[-1].parent
    folder = Path(source)
    if not (folder / "model.bin").is_file():
        raise ModelError(f"{source}: neither {' nor '.join(NAMES)} nor a CTranslate2 whisper folder (no model.bin)")
    ckpt = parse_model_bin((folder / "model.bin").read_bytes(), str(folder / "model.bin"))
    if ckpt.spec != "WhisperSpec":
        raise ModelError(f"{folder / 'model.bin'}: a CTranslate2 {ckpt.spec}, not a WhisperSpec")
    ckpt.provenance = {"model": str(folder), "format": f"CTranslate2 {ckpt.spec} revision {ckpt.revision}"}
    return ckpt, folder


def read_vocabulary(folder: Path) -> list[str]:
    if (folder / "vocabulary.json").is_file():
        return json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))
    if (folder / "vocabulary.txt").is_file():
        return (folder / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:-1]
    raise ModelError(f"{folder}: no vocabulary.json or vocabulary.txt")


def prompt_of(special: dict[str, int], multilingual: bool, language: str = "en") -> list[int]:
    if not multilingual:
        return [special["<|startoftranscript|>"]]
    return [special["<|startoftranscript|>"], special[f"<|{language}|>"], special["<|transcribe|>"]]


def import_whisper(source: str, out_dir: Path, quantize: tuple[str, ...] = (), check: bool = False,
                   pad_30: bool = True, tail_seconds: float = 0.0, weights: Path | None = None) -> dict:
    """Build the model dir; returns {"spec": model.json content, "checks": [...]}. pad_30: the
    encoder graph pads the log-mel with zeros to 30 s as faster-whisper does; without it, it sees
    the input and `tail_seconds` of zero log-mel only (faster, but whisper then often repeats its
    text: tiny.en on 100 test_real utterances, WER 6.45 % padded, 199.5 % with a 2 s tail).
    weights: a `kdasr train-whisper` checkpoint (whisper.pt) of this source: its fine-tuned
    variables replace the source's before the graphs are written."""
    ckpt, folder = load_source(source)
    notes = []
    if weights is not None:
        from ..training.whisper_recipe import load_fine_tuned

        tuned = load_fine_tuned(Path(weights), ckpt)
        ckpt.provenance = {**ckpt.provenance, "fine_tuned": {"checkpoint": str(weights), **tuned}}
        enc = tuned["encoder_input"]
        if (enc["pad_30"], 0.0 if enc["pad_30"] else enc["tail_seconds"]) != (pad_30, 0.0 if pad_30 else tail_seconds):
            notes.append(f"{weights} trained on encoder input pad_30={enc['pad_30']}, tail {enc['tail_seconds']} s; "
                         f"this export has pad_30={pad_30}, tail {tail_seconds} s")
    name = model_name_of(ckpt)
    tokens = read_vocabulary(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    vocab = ckpt.get("decoder/embeddings/weight").shape[0]
    if len(tokens) != vocab:
        raise ModelError(f"{folder}: {len(tokens)} vocabulary entries for {vocab} embedding rows")
    special = {t: i for i, t in enumerate(tokens) if t.startswith("<|") and t.endswith("|>")}
    multilingual = vocab >= 51865  # whisper's own rule
    prompt = prompt_of(special, multilingual)
    suppress = sorted({*config.get("suppress_ids", []), *(special[t] for t in TASK_SPECIALS if t in special)})
    begin = list(config.get("suppress_ids_begin", []))
    out_dir.mkdir(parents=True, exist_ok=True)
    tail = 0 if pad_30 else round(tail_seconds * 100)  # log-mel frames are 10 ms
    encoder = WhisperEncoderGraph(ckpt, pad_features=pad_30, tail_frames=tail).eval()
    decoder = WhisperDecoderStepGraph(ckpt, suppress, begin, begin_at=len(prompt)).eval()
    export_graph(encoder, out_dir / "encoder.onnx")
    export_graph(decoder, out_dir / "decoder.onnx")
    WhisperTokenizer.write(out_dir / VOCAB_FILE, tokens)
    eot, bos = special["<|endoftext|>"], special["<|notimestamps|>"]
    enc_spec, dec_spec = graph_specs(ckpt)
    from dataclasses import replace

    dec_spec = replace(dec_spec, prompt=tuple(prompt))
    architecture = {"encoder": name, "decoder": "whisper", "tokenizer": "whisper-bpe", "ctc_head": False,
                    "max_input_seconds": 30.0 - tail / 100, "pad_features_to_30s": pad_30,
                    "zero_feature_tail_seconds": tail / 100,
                    "multilingual": multilingual, "suppress_tokens": suppress,
                    "begin_suppress_tokens": begin}
    spec = ModelSpec(16000, vocab, SpecialIds(pad=eot, bos=bos, eos=eot, blank=eot), 0.02, enc_spec, dec_spec,
                     DecodeOptions(**RECOMMENDED), architecture,
                     {"imported_from": ckpt.provenance, "importer": "kdasr import-whisper"})
    if quantize:  # the log-mel stays fp32
        spec = spec.with_graphs(add_variants(out_dir, spec.graphs, list(quantize), exclude=("/frontend/",)))
    spec = write_model_json(out_dir, spec)
    checks = []
    if check:
        from .whisper_check import check_whisper_dir

        checks = check_whisper_dir(ckpt, out_dir, prompt, suppress, begin)
    return {"spec": spec, "checks": checks, "notes": notes}
