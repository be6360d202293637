"""Torch reference greedy decoding: the runtime's numpy/ORT search must reproduce it exactly.
Limits come from the same DecodeOptions the runtime takes (kdasr/spec/decode_options.py)."""

from __future__ import annotations

import math

import torch

from ..ctc import ctc_best_paths
from ..spec.decode_options import DecodeOptions
from ..spec.graph_spec import SpecialIds
from .encoder import padding_mask
from .student import Seq2SeqStudent


def ctc_greedy_ids(ctc_logits: torch.Tensor, lens: torch.Tensor, blank: int) -> list[list[int]]:
    """Best path per row of [B, T, V] CTC logits (its first lens[b] frames): repeats merged, blanks dropped."""
    return ctc_best_paths(ctc_logits.argmax(-1).cpu().numpy(), lens.cpu().numpy(), blank)


def length_limits(model: Seq2SeqStudent, memory: torch.Tensor, lens: torch.Tensor, blank: int,
                  opts: DecodeOptions) -> list[int]:
    """Most output tokens per row, as the runtime's search.length_limits: min of max_len_ratio x
    frames and the CTC best path's length x ctc_length_ratio + ctc_length_slack."""
    ctc_lens = [len(ids) for ids in ctc_greedy_ids(model.ctc_head(memory), lens, blank)]
    return [int(min(math.ceil(n * opts.max_len_ratio), c * opts.ctc_length_ratio + opts.ctc_length_slack))
            for n, c in zip(lens.tolist(), ctc_lens)]


@torch.no_grad()
def torch_greedy(
    model: Seq2SeqStudent, wave: torch.Tensor, bos: int, eos: int, blank: int, opts: DecodeOptions = DecodeOptions()
) -> list[int]:
    """One utterance (wave [S]) -> token ids; the limits come from `opts` as in the runtime."""
    model.eval()
    memory, lens = model.encode_waveform(wave[None], torch.tensor([wave.shape[0]]))
    return greedy_from_memory(model, memory, lens, bos, eos, blank, opts)[0]


@torch.no_grad()
def greedy_from_memory(
    model: Seq2SeqStudent,
    memory: torch.Tensor,
    lens: torch.Tensor,
    bos: int,
    eos: int,
    blank: int,
    opts: DecodeOptions = DecodeOptions(),
) -> list[list[int]]:
    """Greedy attention decoding of a batch of encoder outputs (memory [B, T, D], lens [B]); each
    row stops at <eos> or its length limit (`length_limits`). Batch 1 is the runtime's reference."""
    limits = length_limits(model, memory, lens, blank, opts)
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
    compares ORT against. It satisfies kdasr.reports.bench.Engine, and the bench command builds it
    and passes it in, so kdasr.eval itself never imports torch."""

    name = "torch eager fp32"

    def __init__(self, model: Seq2SeqStudent, tokenizer, special_ids: SpecialIds, threads: int) -> None:
        self.model, self.tokenizer, self.ids, self.threads = model.eval(), tokenizer, special_ids, threads
        self.stages: dict[str, float] = {}

    @classmethod
    def load(cls, source, threads: int = 1) -> TorchEagerEngine:
        """source: a training checkpoint (.pt) or an exported model dir (weights read back from its
        fp32 ONNX graphs by kdasr.models.onnx_weights, so the shipped model needs no checkpoint)."""
        from pathlib import Path

        source = Path(source)
        if source.is_dir():
            from .onnx_weights import load_student_from_model_dir

            model, tok, spec = load_student_from_model_dir(source)
            return cls(model, tok, spec.special_ids, threads)
        from .student_io import load_student

        student = load_student(source)
        ids = SpecialIds.of_tokenizer(student.tokenizer)  # what export writes
        return cls(student.model, student.tokenizer, ids, threads)

    def _check(self, opts) -> None:
        if not opts.greedy or opts.method != "attention":
            raise ValueError("the torch eager engine decodes greedy attention only (beam 1, no CTC/LM weight)")

    def transcribe(self, waves: list, opts) -> list[str]:
        self._check(opts)
        torch.set_num_threads(self.threads)
        ids = self.ids
        out = []
        for w in waves:
            tokens = torch_greedy(self.model, torch.from_numpy(w), ids.bos, ids.eos, ids.blank, opts)
            out.append(self.tokenizer.decode(tokens))
        return out

    @torch.no_grad()
    def encode_only(self, waves: list, opts) -> None:
        """The encoder alone (frontend + encoder + CTC head), on the same one-utterance batches."""
        torch.set_num_threads(self.threads)
        for w in waves:
            memory, _ = self.model.encode_waveform(torch.from_numpy(w)[None], torch.tensor([w.shape[0]]))
            self.model.ctc_head(memory)
