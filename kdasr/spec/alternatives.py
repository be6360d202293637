"""The protocol's optional [alternatives] table (issue 28 item 5): KD beside and with the
inference-time alternatives, shallow fusion and n-best rescoring with the LM or BERT teacher, on
chosen students. Parsed and checked here (kdasr/spec/protocol.py calls it); in the fingerprint only
when present, so a protocol without it keeps the fingerprint it had.

    [alternatives]
    methods = ["fusion", "rescore-lm", "rescore-bert"]   # required, one or more
    on = ["ce", "best-kd"]           # default: the first system and "best-kd" (the first alone without KD)
    lm_weight = [0.1, 0.3, 0.5]      # fusion's grid (only with fusion; this default)
    length_bonus = [0]               # fusion's grid too (only with fusion; default [0]: not searched)
    rescore_weight = [0.1, 0.3, 0.5] # the rescorers' grid (only with rescore-*; this default)
    nbest = 8                        # hypotheses rescored; every alternative searches a beam of at least this
    bench_limit = 16                 # the bench: the first N utterances of the first test set
    bench_repeats = 1                # each timing the best of this many rounds

Semantics (what the claim recipe's alternatives stage does with it):
- `on` names students: a [[system]] name, or "best-kd": the KD system (kd != "none") with the lowest
  mean dev WER over the seeds, each seed's WER word-weighted over the dev manifests (the tune stage's
  records, with each student's own dev-tuned decoding); a tie goes to the system listed first.
- Each (student, method) is a system of the claim table, `STUDENT+METHOD` (e.g. `ce+fusion`), one run
  per seed: seed N's student with the grid tuned on the pooled dev set (`kdasr tune`), searching with
  that student's own tuned CTC weight and its tuned beam, raised to nbest where smaller.
- fusion tunes lm_weight × length_bonus; rescore-lm and rescore-bert tune rescore_weight on an n-best
  list of nbest hypotheses, rescored with the LM's log-probability or BERT's pseudo-log-likelihood."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .decode_options import DecodeOptions
from .toml_checks import fail as _fail
from .toml_checks import list_of as _list
from .toml_checks import number as _number
from .toml_checks import values as _values

METHODS = ("fusion", "rescore-lm", "rescore-bert")
BEST_KD = "best-kd"
KEYS = ("methods", "on", "lm_weight", "length_bonus", "rescore_weight", "nbest", "bench_limit", "bench_repeats")
GRIDS = {"lm_weight": ("fusion",), "length_bonus": ("fusion",), "rescore_weight": ("rescore-lm", "rescore-bert")}
DEFAULTS = {"lm_weight": [0.1, 0.3, 0.5], "length_bonus": [0], "rescore_weight": [0.1, 0.3, 0.5]}


@dataclass(frozen=True)
class Alternatives:
    methods: tuple[str, ...]  # METHODS, in the order given
    on: tuple[str, ...]  # system names and/or BEST_KD
    lm_weight: tuple[float, ...] = ()  # fusion's grid (empty without fusion)
    length_bonus: tuple[float, ...] = ()
    rescore_weight: tuple[float, ...] = ()  # the rescorers' grid (empty without rescoring)
    nbest: int = 8
    bench_limit: int = 16
    bench_repeats: int = 1

    def scorers(self) -> tuple[str, ...]:
        """The teachers the methods need exported: 'lm' and/or 'bert'."""
        need = {"fusion": "lm", "rescore-lm": "lm", "rescore-bert": "bert"}
        return tuple(t for t in ("lm", "bert") if t in {need[m] for m in self.methods})


def _count(where: str, t: dict, key: str, default: int, low: int) -> int:
    v = t.get(key, default)
    if not (type(v) is int and v >= low):
        _fail(where, f"[alternatives] {key} must be a whole number >= {low}, got {json.dumps(v, default=str)}")
    return v


def parse_alternatives(where: str, t: object, systems: tuple) -> Alternatives:
    """[alternatives] checked against the protocol's systems; KdasrError "WHERE: [alternatives] ..." (one line)."""
    if not isinstance(t, dict):
        _fail(where, f"'alternatives' must be a table ([alternatives]), got {type(t).__name__}")
    if unknown := sorted(set(t) - set(KEYS)):
        _fail(where, f"[alternatives] unknown key '{unknown[0]}' (known: {', '.join(KEYS)})")
    if "methods" not in t:
        _fail(where, f"[alternatives] missing required key 'methods' (any of {', '.join(METHODS)})")
    methods = _list(where, t["methods"], "[alternatives] methods", lambda v: isinstance(v, str))
    if bad := [m for m in methods if m not in METHODS]:
        _fail(where, f"[alternatives] methods: unknown method {bad[0]!r} (known: {', '.join(METHODS)})")
    names, kd = [s.name for s in systems], [s.name for s in systems if s.kd != "none"]
    on = _list(where, t.get("on", [names[0], *([BEST_KD] if kd else [])]), "[alternatives] on",
               lambda v: isinstance(v, str))
    if bad := [x for x in on if x not in (*names, BEST_KD)]:
        _fail(where, f"[alternatives] on: {bad[0]!r} is not a [[system]] name nor {BEST_KD!r} "
                     f"(systems: {', '.join(names)})")
    if BEST_KD in on and not kd:
        _fail(where, f"[alternatives] on: {BEST_KD!r} needs a KD system (kd other than 'none')")
    if plus := [n for n in names if "+" in n]:
        _fail(where, f"[[system]] name {plus[0]!r} has a '+', which names the alternatives (SYSTEM+METHOD)")
    grids = {}
    for key, users in GRIDS.items():
        used = [m for m in methods if m in users]
        if key in t and not used:
            _fail(where, f"[alternatives] {key} is the grid of {' and '.join(users)}, not among methods")
        values = _list(where, t.get(key, DEFAULTS[key]) if used else [], f"[alternatives] {key}", _number,
                       empty=not used)
        try:  # each value as DecodeOptions takes it (its range checked)
            grids[key] = tuple(float(getattr(DecodeOptions(**{key: v}), key)) for v in values)
        except (TypeError, ValueError) as e:
            _fail(where, f"[alternatives] {key}: {e}")
    return Alternatives(methods, on, **grids, nbest=_count(where, t, "nbest", 8, 2),
                        bench_limit=_count(where, t, "bench_limit", 16, 1),
                        bench_repeats=_count(where, t, "bench_repeats", 1, 1))


def alternatives_lines(a: Alternatives | None, first_test_set: str) -> list[str]:
    """The protocol block's line(s) on the alternatives."""
    if a is None:
        return []
    grid = {"fusion": f"fusion (lm_weight ∈ {_values(a.lm_weight)}, length_bonus ∈ {_values(a.length_bonus)})",
            "rescore-lm": f"rescore-lm (the LM's log-probability, rescore_weight ∈ {_values(a.rescore_weight)})",
            "rescore-bert": f"rescore-bert (BERT's pseudo-log-likelihood, rescore_weight ∈ "
                            f"{_values(a.rescore_weight)})"}
    on = ", ".join(f"{x} (the KD system with the lowest mean dev WER over seeds)" if x == BEST_KD else x
                   for x in a.on)
    return [f"- Inference-time alternatives on {on}: " + "; ".join(grid[m] for m in a.methods)
            + f"; each tuned on dev per seed with that student's own tuned CTC weight and beam (at least "
            f"{a.nbest}, the n-best list rescored); systems STUDENT+METHOD",
            f"- Decoding cost: one `kdasr bench` run, first seed, the first {a.bench_limit} utterances of "
            f"`{first_test_set}`, best of {a.bench_repeats}"]
