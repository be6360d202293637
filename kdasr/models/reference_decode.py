"""Torch reference greedy decoding: the runtime's numpy/ORT search must reproduce it exactly."""

from __future__ import annotations

import math

import torch

from .encoder import padding_mask
from .student import Seq2SeqStudent


@torch.no_grad()
def torch_greedy(
    model: Seq2SeqStudent,
    wave: torch.Tensor,
    bos: int,
    eos: int,
    blank: int,
    max_len_ratio: float = 0.6,
    ctc_ratio: float = 1.5,
    ctc_slack: int = 4,
) -> list[int]:
    """One utterance (wave [S]) -> token ids, same limits as kdasr.runtime.DecodeOptions."""
    model.eval()
    memory, lens = model.encode_waveform(wave[None], torch.tensor([wave.shape[0]]))
    best = model.ctc_head(memory)[0].argmax(-1).tolist()
    ctc_len = sum(1 for i, t in enumerate(best) if t != blank and (i == 0 or t != best[i - 1]))
    limit = int(min(math.ceil(int(lens[0]) * max_len_ratio), ctc_len * ctc_ratio + ctc_slack))
    mask = padding_mask(lens, memory.shape[1])
    keys = model.decoder.memory_keys(memory)
    state = model.decoder.initial_state(memory, mask)
    token, out = torch.tensor([bos]), []
    while len(out) <= limit:
        logits, state = model.decoder.step(token, state, memory, keys, mask)
        token = logits.argmax(-1)
        if int(token) == eos or len(out) >= limit:
            break
        out.append(int(token))
    return out


class TorchEagerEngine:
    """Torch eager greedy decoding, one utterance at a time: the reference engine `kdasr bench`
    compares ORT against. It satisfies kdasr.eval.bench.Engine, and the bench command builds it
    and passes it in, so kdasr.eval itself never imports torch."""

    name = "torch eager fp32"

    def __init__(self, model: Seq2SeqStudent, tokenizer, special_ids: dict, threads: int) -> None:
        self.model, self.tokenizer, self.ids, self.threads = model.eval(), tokenizer, special_ids, threads
        self.stages: dict[str, float] = {}

    @classmethod
    def load(cls, source, threads: int = 1) -> TorchEagerEngine:
        """source: a training checkpoint (.pt) or an exported model dir (weights read back from its
        fp32 ONNX graphs by kdasr.export.recover, so the shipped model needs no checkpoint)."""
        from pathlib import Path

        from ..export.pipeline import load_student
        from ..text import Tokenizer

        source = Path(source)
        if source.is_dir():
            from ..export.recover import load_student_from_model_dir

            model, tok, info = load_student_from_model_dir(source)
            return cls(model, tok, info["special_ids"], threads)
        model, payload = load_student([source])
        tok = Tokenizer.from_bytes(payload["tokenizer_model"])
        ids = {"bos": tok.bos_id, "eos": tok.eos_id, "blank": tok.pad_id}  # as kdasr.export.model_dir writes them
        return cls(model, tok, ids, threads)

    def _check(self, opts) -> None:
        if not opts.greedy or opts.method != "attention":
            raise ValueError("the torch eager engine decodes greedy attention only (beam 1, no CTC/LM weight)")

    def transcribe(self, waves: list, opts) -> list[str]:
        self._check(opts)
        torch.set_num_threads(self.threads)
        ids = self.ids
        out = []
        for w in waves:
            tokens = torch_greedy(
                self.model, torch.from_numpy(w), ids["bos"], ids["eos"], ids["blank"],
                opts.max_len_ratio, opts.ctc_length_ratio, opts.ctc_length_slack,
            )
            out.append(self.tokenizer.decode(tokens))
        return out

    @torch.no_grad()
    def encode_only(self, waves: list, opts) -> None:
        """The encoder alone (frontend + encoder + CTC head), on the same one-utterance batches."""
        torch.set_num_threads(self.threads)
        for w in waves:
            memory, _ = self.model.encode_waveform(torch.from_numpy(w)[None], torch.tensor([w.shape[0]]))
            self.model.ctc_head(memory)
