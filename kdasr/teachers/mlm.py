"""A Hugging Face masked LM run the fast way: its body and MLM head, and batches of masked rows
(each row one window with one position masked), equal-length rows batched without padding, the head
run only at each row's masked position. Used by the BERT teacher (bert), its soft labels
(soft_labels), its quality checks and the teacher export. Span rows (a whole word masked at once,
for the per-word quality figures) are batched the same way."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import ModelError
from ..text import MASK_ID
from .train_loop import amp_context, device_of


class _DecoderHead(torch.nn.Module):
    """ModernBERT's MLM head is two modules (.head then .decoder); this makes it one."""

    def __init__(self, head: torch.nn.Module, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.head, self.decoder = head, decoder

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.head(hidden))


def mlm_body_and_head(model) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(encoder returning last_hidden_state, MLM head mapping hidden vectors to vocabulary logits)
    of a Hugging Face masked LM: BERT/RoBERTa-style (.cls / .lm_head) or ModernBERT (.head + .decoder)."""
    head = getattr(model, "cls", None)
    head = getattr(model, "lm_head", None) if head is None else head
    if head is None and isinstance(getattr(model, "decoder", None), torch.nn.Linear) and hasattr(model, "head"):
        head = _DecoderHead(model.head, model.decoder)
    if head is None:
        raise ModelError(f"{type(model).__name__}: unknown masked-LM head (expected .cls, .lm_head or .head+.decoder)")
    return model.base_model, head


@dataclass(frozen=True)
class MaskedRow:
    window: int  # index of the window this row belongs to
    tokens: tuple[int, ...]  # the unmasked window
    position: int  # the one position replaced by <mask>
    target: int  # the token that was there


def masked_rows(windows: list[tuple[tuple[int, ...], range]], mask_id: int = MASK_ID) -> list[MaskedRow]:
    del mask_id  # the mask is applied when a batch is built
    return [MaskedRow(w, toks, p, toks[p]) for w, (toks, positions) in enumerate(windows) for p in positions]


@torch.no_grad()
def run_masked_batches(
    model, rows: list[MaskedRow], batch_tokens: int, mask_id: int = MASK_ID, amp: str = "none"
) -> Iterator[tuple[list[MaskedRow], torch.Tensor]]:
    """Yield (rows, logits [r, V] at each row's masked position, on the CPU), rows of equal length
    batched; the model runs where its weights are.
    amp "bf16": the body runs under bf16 autocast (~2x on CPUs with AMX), the head in fp32 so the
    top-K logits keep their precision."""
    body, head = mlm_body_and_head(model)
    dev = device_of(model)
    for chunk in _equal_length_chunks(rows, batch_tokens):
        ids = torch.tensor([r.tokens for r in chunk], dtype=torch.long)
        rows_i = torch.arange(len(chunk))
        pos = torch.tensor([r.position for r in chunk])
        ids[rows_i, pos] = mask_id
        ids, rows_i, pos = ids.to(dev), rows_i.to(dev), pos.to(dev)
        with amp_context(amp, dev):
            if _is_plain_bert(model):
                at = _bert_hidden_at(body, ids, pos)
            else:
                at = body(input_ids=ids).last_hidden_state[rows_i, pos]
        yield chunk, head(at.float()).cpu()


def _equal_length_chunks(rows: list, batch_tokens: int) -> Iterator[list]:
    """Rows grouped by length (shortest first), about batch_tokens tokens per chunk."""
    by_len: dict[int, list] = defaultdict(list)
    for r in rows:
        by_len[len(r.tokens)].append(r)
    for length in sorted(by_len):
        group = by_len[length]
        per = max(1, batch_tokens // length)
        for i in range(0, len(group), per):
            yield group[i : i + per]


@dataclass(frozen=True)
class SpanRow:
    window: int  # index of the window (sentence) this row belongs to
    tokens: tuple[int, ...]  # the unmasked window
    start: int  # positions start .. end-1 are replaced by <mask> together
    end: int


@torch.no_grad()
def run_span_batches(
    model, rows: list[SpanRow], batch_tokens: int, mask_id: int = MASK_ID, amp: str = "none"
) -> Iterator[tuple[list[SpanRow], list[torch.Tensor]]]:
    """Yield (rows, per row the logits [end - start, V] at its masked positions, on the CPU): each
    row's span masked at once, equal-length rows batched without padding, the head run only at the
    masked positions."""
    body, head = mlm_body_and_head(model)
    dev = device_of(model)
    for chunk in _equal_length_chunks(rows, batch_tokens):
        ids = torch.tensor([r.tokens for r in chunk], dtype=torch.long)
        at = torch.arange(ids.shape[1])[None]
        masked = (at >= torch.tensor([r.start for r in chunk])[:, None]) & (
            at < torch.tensor([r.end for r in chunk])[:, None]
        )
        ids[masked] = mask_id
        with amp_context(amp, dev):
            hidden = body(input_ids=ids.to(dev)).last_hidden_state[masked.to(dev)]  # row by row, in order
        logits = head(hidden.float()).cpu()
        yield chunk, list(logits.split([r.end - r.start for r in chunk]))


def _is_plain_bert(model) -> bool:
    c = model.config
    return (
        c.model_type == "bert"
        and getattr(c, "position_embedding_type", "absolute") == "absolute"
        and (not c.is_decoder)
    )


def _bert_hidden_at(bert, ids: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """BERT's last hidden state at one position per row [r, H]: every layer but the last runs over
    all positions; the last one needs keys/values of all positions but its query, attention
    output and feed-forward only at `pos` (the rows have no padding, so no attention mask)."""
    h = bert.embeddings(input_ids=ids)
    for layer in bert.encoder.layer[:-1]:
        out = layer(h)
        h = out[0] if isinstance(out, tuple) else out
    last = bert.encoder.layer[-1]
    sa = last.attention.self
    r, length, width = h.shape
    heads, dh = sa.num_attention_heads, sa.attention_head_size
    x = h[torch.arange(r), pos]
    q = sa.query(x).view(r, heads, 1, dh)
    k = sa.key(h).view(r, length, heads, dh).transpose(1, 2)
    v = sa.value(h).view(r, length, heads, dh).transpose(1, 2)
    ctx = torch.nn.functional.scaled_dot_product_attention(q, k, v).reshape(r, width)
    a = last.attention.output.LayerNorm(last.attention.output.dense(ctx) + x)
    return last.output.LayerNorm(last.output.dense(last.intermediate(a)) + a)
