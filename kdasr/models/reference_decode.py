"""Torch reference greedy decoding: the runtime's numpy/ORT search must reproduce it exactly."""

from __future__ import annotations

import math

import torch

from .encoder import padding_mask
from .student import Seq2SeqStudent


def ctc_greedy_ids(ctc_logits: torch.Tensor, lens: torch.Tensor, blank: int) -> list[list[int]]:
    """Best path per row of [B, T, V] CTC logits (its first lens[b] frames): repeats merged, blanks dropped."""
    out = []
    for row, n in zip(ctc_logits.argmax(-1).tolist(), lens.tolist()):
        ids, prev = [], None
        for t in row[:n]:
            if t != prev and t != blank:
                ids.append(t)
            prev = t
        out.append(ids)
    return out


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
    return greedy_from_memory(model, memory, lens, bos, eos, blank, max_len_ratio, ctc_ratio, ctc_slack)[0]


@torch.no_grad()
def greedy_from_memory(
    model: Seq2SeqStudent,
    memory: torch.Tensor,
    lens: torch.Tensor,
    bos: int,
    eos: int,
    blank: int,
    max_len_ratio: float = 0.6,
    ctc_ratio: float = 1.5,
    ctc_slack: int = 4,
) -> list[list[int]]:
    """Greedy attention decoding of a batch of encoder outputs (memory [B, T, D], lens [B]); each
    row stops at <eos> or its length limit (min of max_len_ratio·frames and the CTC best path's
    length·ctc_ratio + ctc_slack). Batch 1 is the runtime's reference."""
    ctc_lens = [len(ids) for ids in ctc_greedy_ids(model.ctc_head(memory), lens, blank)]
    limits = [
        int(min(math.ceil(n * max_len_ratio), c * ctc_ratio + ctc_slack)) for n, c in zip(lens.tolist(), ctc_lens)
    ]
    mask = padding_mask(lens, memory.shape[1])
    keys = model.decoder.memory_keys(memory)
    state = model.decoder.initial_state(memory, mask)
    token = torch.full((memory.shape[0],), bos, dtype=torch.long)
    out: list[list[int]] = [[] for _ in limits]
    done = [False] * len(limits)
    while not all(done):
        logits, state = model.decoder.step(token, state, memory, keys, mask)
        token = logits.argmax(-1)
        for b, t in enumerate(token.tolist()):
            if done[b]:
                continue
            if t == eos or len(out[b]) >= limits[b]:
                done[b] = True
            else:
                out[b].append(t)
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
        fp32 ONNX graphs by kdasr.models.onnx_weights, so the shipped model needs no checkpoint)."""
        from pathlib import Path

        from ..export.pipeline import load_student
        from ..text import Tokenizer

        source = Path(source)
        if source.is_dir():
            from .onnx_weights import load_student_from_model_dir

            model, tok, spec = load_student_from_model_dir(source)
            return cls(model, tok, spec.special_ids.to_dict(), threads)
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
