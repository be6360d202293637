"""One encoded batch -> n-best hypotheses per utterance: picks greedy, CTC or the scored beam
search from DecodeOptions, wires the scorers named in its weights dict, then rescoring."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol

import numpy as np

from ...errors import ModelError
from ...spec.decode_options import DecodeOptions
from ..onnx_model import OnnxStudent
from .beam import Hypothesis, LengthNormalized, beam_search
from .ctc_prefix import CTCPrefixScorer
from .greedy import attention_greedy, ctc_greedy, length_limits
from .scorers import DecoderScorer, FullScorer, LengthBonus, Scorer


class SequenceScorer(Protocol):
    """Scores whole token sequences in one batch (LM log-prob, BERT pseudo-log-likelihood)."""

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray: ...


class RememberedScores:
    """A SequenceScorer that scores each distinct sequence once and answers again from memory. A grid
    search over rescore_weight (`kdasr tune`) meets the same n-best lists at every weight, and the
    teacher's score of a sequence does not depend on the weight: BERT's pseudo-log-likelihood (one
    forward pass per unit) then runs once per hypothesis, not once per grid point."""

    def __init__(self, scorer: SequenceScorer) -> None:
        self.scorer = scorer
        self.scores: dict[tuple[int, ...], float] = {}

    def sequence_scores(self, seqs: list[tuple[int, ...]]) -> np.ndarray:
        new = list(dict.fromkeys(s for s in seqs if s not in self.scores))
        if new:
            self.scores.update(zip(new, map(float, self.scorer.sequence_scores(new))))
        return np.array([self.scores[s] for s in seqs], np.float64)


class FusionLM(Protocol):
    def scorer(self) -> FullScorer: ...


def decode_encoded(
    model: OnnxStudent,
    enc: dict[str, np.ndarray],
    opts: DecodeOptions,
    lm: FusionLM | None = None,
    rescorer: SequenceScorer | None = None,
) -> list[list[Hypothesis]]:
    ids, io = model.spec.special_ids, model.spec.encoder
    if not io.ctc_logprobs and (opts.method == "ctc" or opts.ctc_weight):
        raise ModelError(f"{model.model_dir}: this model has no CTC head (--method ctc and --ctc-weight need one)")
    if opts.method == "ctc":
        best = ctc_greedy(enc[io.ctc_logprobs], enc[io.lens], ids.blank)
        return [[Hypothesis(tuple(t), 0.0, 0.0)] for t in best]
    if opts.greedy and opts.rescore == "none":
        return [[Hypothesis(tuple(t), 0.0, 0.0)] for t in attention_greedy(model, enc, opts)]
    weights = opts.weights()
    scorers: dict[str, Scorer] = {"decoder": DecoderScorer(model, enc)}
    if "lm" in weights:
        if lm is None:
            raise ModelError("--lm-weight needs an LM (--lm DIR with lm.onnx)")
        scorers["lm"] = lm.scorer()
    if "ctc" in weights:
        scorers["ctc"] = CTCPrefixScorer(enc[io.ctc_logprobs], enc[io.lens], ids.blank, ids.eos)
    if "length_bonus" in weights:
        scorers["length_bonus"] = LengthBonus()
    search = replace(opts, nbest=max(opts.nbest, opts.beam)) if opts.rescore != "none" else opts  # rescored: all
    limits = length_limits(enc[io.lens], enc.get(io.ctc_logprobs), ids.blank, opts)
    hyps = beam_search(scorers, weights, limits, ids.bos, ids.eos, search)
    if opts.rescore != "none":
        if rescorer is None:
            raise ModelError(f"--rescore {opts.rescore} needs its model (--lm DIR or --bert DIR)")
        hyps = rescore(hyps, rescorer, opts)
    return hyps


def rescore(hyps: list[list[Hypothesis]], scorer: SequenceScorer, opts: DecodeOptions) -> list[list[Hypothesis]]:
    """N-best rescoring: every hypothesis of every utterance scored in one batch, then re-ranked by
    search score + rescore_weight * external score (length penalty applied to the sum)."""
    flat = [h.tokens for nb in hyps for h in nb]
    ext = scorer.sequence_scores(flat) if flat else np.zeros(0)
    out, i = [], 0
    ranker = LengthNormalized(opts.length_penalty)
    for nb in hyps:
        ranked = []
        for h in nb:
            raw = h.search_score + opts.rescore_weight * float(ext[i])
            ranked.append(replace(h, score=ranker(raw, len(h.tokens)), search_score=raw))
            i += 1
        ranked.sort(key=lambda h: -h.score)
        out.append(ranked[: opts.nbest])
    return out
