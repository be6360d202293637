"""An experiment protocol fixed before any test number exists (issue 28 item 1): a TOML file with
the budget, the seeds, the systems (KD mode, label smoothing, λ grid), the soft-label grids (T, K),
the decoding grid (`kdasr tune --grid`), the dev manifests every choice is made on, the test sets,
and the record of every change. Parsed and checked here, typed and frozen; its fingerprint (sha256
of the canonical content, changes excluded) is what kdasr/recipe/protocol.py locks into a run dir.
Shared (not a stage) so that the table writer in kdasr/reports can render the protocol block.

    name = "claim-v1"
    seeds = [1, 2, 3]
    dev_manifests = ["data/mix/dev.jsonl"]
    test_sets = ["test", "test_real"]
    [budget]                  steps = 6000, threads = 1   (per student)
    [setup]                   train = "data/mix/train.jsonl", dev = "data/mix/dev.jsonl",
                              config = "whisper-tiny-frozen", tokenizer = "data/mix/tok1000.model",
                              bert_teacher = "exp/p27/teachers/bert-1000", lm_teacher = "...",
                              feature_cache = "exp/cache/tiny-frozen" (optional), test_dir = "data/mix",
                              sweep_steps = 1000   (the short dev sweeps of λ and T, K),
                              dev_limit = 600 (optional: dev utterances every choice is scored on),
                              teacher_text = "data/mix/teacher.txt" (needed by a kd = "count" system)
    [soft_labels]             temperature = [1, 2, 3], top_k = [8, 32], kd_smoothing = 0.1
    [decoding]                beam = [1, 10], ctc_weight = [0, 0.3]   (DecodeOptions fields -> values)
    [[system]]                name = "ce", kd = "none", label_smoothing = 0.1
    [[system]]                name = "bert-context", kd = "bert-context", label_smoothing = 0.1,
                              kd_weight = [0.1, 0.3, 0.5]
    [alternatives]            methods = ["fusion", "rescore-lm"], on = ["ce", "best-kd"], lm_weight = [0.1, 0.3]
                              (optional; kdasr/spec/alternatives.py: fusion and rescoring on chosen students)
    [[change]]                date = 2026-12-07, from = "<fingerprint it changes>", what = "...",
                              why = "...", after_test = false

[setup] is what the claim recipe (kdasr/recipe/claim.py) runs on: the train manifest, the dev
manifest the trainer reports on, the student config (packaged name or .toml path), the units, the
teachers (and the count model's text, for a count-KD system), the feature cache (optional), the
folder holding the test sets `<test_dir>/<set>.jsonl` and the length of the dev sweeps. It changes
results, so it is in the fingerprint; a protocol without it (a table's block only) still reads, with
the same fingerprint as before [setup] existed (and one without teacher_text as before that key).

A system's label_smoothing is a number or "entropy-matched" (the smoothing control: the ε that
`kdasr teacher soft-stats` gives for the chosen soft labels). A change's `from` is the fingerprint it
replaces; a run dir frozen on that fingerprint accepts the changed protocol."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from ..errors import KdasrError
from .alternatives import Alternatives, parse_alternatives
from .decode_options import DecodeOptions
from .toml_checks import fail as _fail
from .toml_checks import list_of as _list
from .toml_checks import number as _number
from .toml_checks import string as _string
from .toml_checks import table as _table
from .toml_checks import values as _values

# `kdasr train --kd` (kdasr.teachers.kd_mode.KdMode's values; "count": the two-sided count model's labels)
KD_MODES = ("none", "lm", "bert", "bert-context", "count")
ENTROPY_MATCHED = "entropy-matched"
TOP_KEYS = ("name", "seeds", "dev_manifests", "test_sets", "budget", "setup", "soft_labels", "decoding", "system",
            "alternatives", "change")
SETUP_PATHS = ("train", "dev", "config", "tokenizer", "bert_teacher", "lm_teacher", "test_dir")  # required strings












@dataclass(frozen=True)
class System:
    name: str
    kd: str  # KD_MODES
    label_smoothing: float | str  # ε, or ENTROPY_MATCHED
    kd_weight: tuple[float, ...] = ()  # the λ grid swept on dev (empty without KD)

    @classmethod
    def parse(cls, where: str, d: object) -> System:
        if not isinstance(d, dict):
            _fail(where, f"must be a table, got {type(d).__name__}")
        if unknown := sorted(set(d) - {"name", "kd", "label_smoothing", "kd_weight"}):
            _fail(where, f"unknown key '{unknown[0]}' (known: name, kd, label_smoothing, kd_weight)")
        name = _string(where, d, "name")
        where = f"{where} ({name!r})"
        kd = d.get("kd")
        if kd not in KD_MODES:
            _fail(where, f"kd must be one of {', '.join(KD_MODES)}, got {json.dumps(kd, default=str)}")
        if "label_smoothing" not in d:
            _fail(where, "missing required key 'label_smoothing'")
        ls = d["label_smoothing"]
        if not (ls == ENTROPY_MATCHED or (_number(ls) and 0 <= ls < 1)):
            _fail(where, f"label_smoothing must be in [0, 1) or {ENTROPY_MATCHED!r}, got {json.dumps(ls, default=str)}")
        grid = _list(where, d.get("kd_weight", []), "kd_weight", lambda v: _number(v) and 0 < v <= 1, empty=True)
        if kd == "none" and grid:
            _fail(where, "kd_weight (λ) is for KD systems; kd = 'none' takes none")
        if kd != "none" and not grid:
            _fail(where, f"kd = {kd!r} needs kd_weight, the λ grid swept on dev (each in (0, 1])")
        return cls(name, kd, ls if isinstance(ls, str) else float(ls), tuple(float(v) for v in grid))


@dataclass(frozen=True)
class Setup:
    """What the claim recipe runs on (paths as given: relative ones to where the recipe runs)."""

    train: str  # train manifest
    dev: str  # the dev manifest the trainer reports on (kdasr train --dev)
    config: str  # student config: a packaged name (whisper-tiny-frozen) or a .toml path
    tokenizer: str
    bert_teacher: str  # teacher dirs (kdasr teacher bert / lm --out)
    lm_teacher: str
    test_dir: str  # holds <set>.jsonl for every test set
    sweep_steps: int  # optimiser steps of each dev-sweep run (λ, T and K)
    feature_cache: str = ""  # kdasr train --feature-cache ("": one inside the run dir)
    dev_limit: int = 0  # dev utterances every choice is scored on (the pooled dev sets interleaved; 0: all)
    teacher_text: str = ""  # the count model's text (kd = "count": --teacher count:TEXT); "": none

    def test_manifest(self, name: str) -> str:
        return str(Path(self.test_dir) / f"{name}.jsonl")

    @classmethod
    def parse(cls, where: str, data: dict, steps: int) -> Setup:
        t = _table(where, data, "setup", (*SETUP_PATHS, "feature_cache", "sweep_steps", "dev_limit", "teacher_text"),
                   (*SETUP_PATHS, "sweep_steps"))
        paths = {k: _string(where, t, k, f"[setup] {k}") for k in SETUP_PATHS}
        cache = t.get("feature_cache", "")
        if not isinstance(cache, str):
            _fail(where, f"[setup] feature_cache must be a string (a folder), got {json.dumps(cache, default=str)}")
        sweep = t["sweep_steps"]
        if not (type(sweep) is int and 0 < sweep <= steps):
            _fail(where, f"[setup] sweep_steps must be a whole number in [1, budget.steps = {steps}], got {sweep!r}")
        limit = t.get("dev_limit", 0)
        if not (type(limit) is int and limit >= 0):
            _fail(where, f"[setup] dev_limit must be a whole number (0: every dev utterance), got {limit!r}")
        text = t.get("teacher_text", "")
        if not isinstance(text, str):
            _fail(where, f"[setup] teacher_text must be a string (a file), got {json.dumps(text, default=str)}")
        return cls(**paths, sweep_steps=sweep, feature_cache=cache, dev_limit=limit, teacher_text=text)


@dataclass(frozen=True)
class Change:
    date: str  # ISO date
    what: str
    why: str
    after_test: bool  # made after a test number of this protocol was seen
    from_fingerprint: str = ""  # TOML `from`: the fingerprint this change replaces

    @classmethod
    def parse(cls, where: str, d: object) -> Change:
        if not isinstance(d, dict):
            _fail(where, f"must be a table, got {type(d).__name__}")
        if unknown := sorted(set(d) - {"date", "what", "why", "after_test", "from"}):
            _fail(where, f"unknown key '{unknown[0]}' (known: date, what, why, after_test, from)")
        date = d.get("date")
        if isinstance(date, datetime.date) and not isinstance(date, datetime.datetime):
            date = date.isoformat()
        elif not (isinstance(date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)):
            _fail(where, f"date must be a date (2026-12-07), got {json.dumps(date, default=str)}")
        if not isinstance(d.get("after_test"), bool):
            _fail(where, "after_test must be true or false (was a test number of this protocol seen before it?)")
        source = d.get("from", "")
        if not (isinstance(source, str) and re.fullmatch(r"([0-9a-f]{64})?", source)):
            _fail(where, f"from must be the sha256 fingerprint (64 hex digits) it changes, got {source!r}")
        return cls(date, _string(where, d, "what"), _string(where, d, "why"), d["after_test"], source)


@dataclass(frozen=True)
class Protocol:
    name: str
    steps: int  # optimiser steps per student
    threads: int
    seeds: tuple[int, ...]
    systems: tuple[System, ...]
    temperatures: tuple[float, ...]
    top_ks: tuple[int, ...]
    kd_smoothing: float  # σ of every KD system's soft target
    decoding: MappingProxyType  # DecodeOptions field -> tuple of values (`kdasr tune --grid`)
    dev_manifests: tuple[str, ...]
    test_sets: tuple[str, ...]
    changes: tuple[Change, ...] = ()
    path: str = ""  # where it was read from (not content)
    setup: Setup | None = None  # what the claim recipe runs on (None: a table's block only)
    alternatives: Alternatives | None = None  # fusion and rescoring on chosen students (kdasr/spec/alternatives.py)

    def content(self) -> dict:
        """The canonical content: everything but the changes and the path (what the fingerprint covers);
        no "setup" or "alternatives" key without its table, so such a protocol keeps the fingerprint it
        had before the table existed."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("changes", "path", "setup", "alternatives")}
        for key in ("setup", "alternatives"):
            if getattr(self, key) is not None:
                d[key] = dataclasses.asdict(getattr(self, key))
        if "setup" in d and not d["setup"]["teacher_text"]:  # fingerprints from before teacher_text stay
            del d["setup"]["teacher_text"]
        d["systems"] = [dataclasses.asdict(s) for s in self.systems]
        d["decoding"] = {k: list(v) for k, v in self.decoding.items()}
        return json.loads(json.dumps(d))  # tuples as lists

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def system(self, name: str) -> System:
        return next(s for s in self.systems if s.name == name)


def _decoding(where: str, grid: object) -> MappingProxyType:
    if not isinstance(grid, dict):
        _fail(where, f"'decoding' must be a table ([decoding]), got {type(grid).__name__}")
    known = [f.name for f in dataclasses.fields(DecodeOptions)]
    out = {}
    for key, values in grid.items():
        if key not in known:
            _fail(where, f"[decoding] unknown key '{key}': not a decoding option (known: {', '.join(known)})")
        values = _list(where, values, f"[decoding] {key}", lambda v: isinstance(v, str | int | float))
        try:  # each value as DecodeOptions takes it (ranges checked; 0 -> 0.0 for a float field)
            out[key] = tuple(getattr(DecodeOptions(**{key: v}), key) for v in values)
        except (TypeError, ValueError) as e:
            _fail(where, f"[decoding] {key}: {e}")
    return MappingProxyType(out)


def parse_protocol(data: dict, where: str) -> Protocol:
    """A Protocol from parsed TOML; KdasrError "WHERE: [section] key ..." (one line) for bad content."""
    if unknown := sorted(set(data) - set(TOP_KEYS)):
        _fail(where, f"unknown key '{unknown[0]}' (known: {', '.join(TOP_KEYS)})")
    for key in ("name", "seeds", "dev_manifests", "test_sets", "system"):
        if key not in data:
            _fail(where, f"missing required key '{key}'")
    budget = _table(where, data, "budget", ("steps", "threads"), ("steps", "threads"))
    for key in ("steps", "threads"):
        if not (isinstance(budget[key], int) and not isinstance(budget[key], bool) and budget[key] > 0):
            _fail(where, f"[budget] {key} must be a positive whole number, got {budget[key]!r}")
    soft = _table(where, data, "soft_labels", ("temperature", "top_k", "kd_smoothing"), ("temperature", "top_k"))
    temps = _list(where, soft["temperature"], "[soft_labels] temperature", lambda v: _number(v) and v > 0)
    top_ks = _list(where, soft["top_k"], "[soft_labels] top_k", lambda v: type(v) is int and v > 0)
    sigma = soft.get("kd_smoothing", 0.1)
    if not (_number(sigma) and 0 <= sigma < 1):
        _fail(where, f"[soft_labels] kd_smoothing must be in [0, 1), got {sigma!r}")
    seeds = _list(where, data["seeds"], "seeds", lambda v: type(v) is int and v >= 0)
    systems = data["system"]
    if not isinstance(systems, list) or not systems:
        _fail(where, "system must be one or more [[system]] tables")
    parsed = tuple(System.parse(f"{where}: [[system]] {i + 1}", s) for i, s in enumerate(systems))
    names = [s.name for s in parsed]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        _fail(where, f"[[system]] name {dup[0]!r} is used twice")
    changes = data.get("change", [])
    if not isinstance(changes, list):
        _fail(where, "change must be [[change]] tables")
    test_sets = _list(where, data["test_sets"], "test_sets", lambda v: isinstance(v, str) and v)
    dev_manifests = _list(where, data["dev_manifests"], "dev_manifests", lambda v: isinstance(v, str) and v)
    if clash := sorted(set(test_sets) & {Path(d).stem for d in dev_manifests}):
        _fail(where, f"test set {clash[0]!r} has the name of a dev manifest (results are filed by set name)")
    setup = Setup.parse(where, data, budget["steps"]) if "setup" in data else None
    if setup is not None and not setup.teacher_text and (count := [s.name for s in parsed if s.kd == "count"]):
        _fail(where, f"[[system]] {count[0]!r} (kd = 'count') needs [setup] teacher_text, the count model's text")
    return Protocol(
        name=_string(where, data, "name"),
        steps=budget["steps"], threads=budget["threads"], seeds=seeds, systems=parsed,
        temperatures=tuple(float(t) for t in temps), top_ks=top_ks, kd_smoothing=float(sigma),
        decoding=_decoding(where, data.get("decoding", {})),
        dev_manifests=dev_manifests, test_sets=test_sets,
        changes=tuple(Change.parse(f"{where}: [[change]] {i + 1}", c) for i, c in enumerate(changes)),
        path=where,
        setup=setup,
        alternatives=_alternatives(where, data, parsed),
    )


def _alternatives(where: str, data: dict, systems: tuple[System, ...]) -> Alternatives | None:
    if "alternatives" not in data:
        return None
    return parse_alternatives(where, data["alternatives"], systems)


def read_protocol(path: str | Path) -> Protocol:
    """The protocol file `path`; KdasrError naming the file (and line and column for bad TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise KdasrError(f"{path}: cannot read the protocol ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        if m := re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg):
            raise KdasrError(f"{path}:{m[1]}:{m[2]}: invalid TOML: {msg[: m.start()]}") from None
        raise KdasrError(f"{path}: invalid TOML: {msg}") from None
    return parse_protocol(data, str(path))




def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _setup_lines(u: Setup | None) -> list[str]:
    if u is None:
        return []
    return [
        f"- Setup: train `{u.train}` (the trainer's dev `{u.dev}`), student config `{u.config}`, units "
        f"`{u.tokenizer}`, teachers `{u.bert_teacher}` (BERT) and `{u.lm_teacher}` (LM)"
        + (f", count model from `{u.teacher_text}`" if u.teacher_text else "") + ", test sets from "
        f"`{u.test_dir}`" + (f", features cached in `{u.feature_cache}`" if u.feature_cache else ""),
        f"- Dev sweeps (λ; T and K): {u.sweep_steps} optimiser steps per run, first seed; choices scored on "
        + (f"the first {u.dev_limit} utterances of the dev sets interleaved" if u.dev_limit else "every dev utterance"),
    ]


def _alternatives_lines(p: Protocol) -> list[str]:
    if p.alternatives is None:
        return []
    from .alternatives import alternatives_lines

    return alternatives_lines(p.alternatives, p.test_sets[0])


def render_protocol_block(p: Protocol) -> str:
    """The protocol as a Markdown block for a results table: what was fixed before any test number,
    and every change since, those made after a test number was seen marked."""
    smoothing = {s.name: ("entropy-matched (`kdasr teacher soft-stats`)" if s.label_smoothing == ENTROPY_MATCHED
                          else f"{s.label_smoothing:g}") for s in p.systems}
    lines = [
        f"### Protocol `{p.name}` (fingerprint `{p.fingerprint[:16]}`)",
        "",
        "Fixed before any test number; every choice (λ, T and K, decoding) made on the dev sets only.",
        "",
        f"- Budget: {p.steps} optimiser steps per student, {p.threads} thread{'s' if p.threads != 1 else ''}",
        f"- Seeds: {', '.join(map(str, p.seeds))} (each sets the trainable weights' init and the data order)",
        f"- Soft labels: T ∈ {_values(p.temperatures)}, K ∈ {_values(p.top_ks)}, "
        + (f"mixed with σ = {p.kd_smoothing:g} uniform" if p.kd_smoothing else "no uniform part, as in the paper"),
        "- Decoding grid (`kdasr tune`): "
        + ("; ".join(f"{k} ∈ {_values(v)}" for k, v in p.decoding.items()) or "none (greedy)"),
        f"- Dev sets (every choice): {', '.join(f'`{d}`' for d in p.dev_manifests)}",
        f"- Test sets: {', '.join(f'`{t}`' for t in p.test_sets)}",
        *_setup_lines(p.setup),
        *_alternatives_lines(p),
        "",
        "| system | KD | label smoothing | λ grid |",
        "|---|---|---|---|",
        *(f"| {s.name} | {s.kd} | {smoothing[s.name]} | {_values(s.kd_weight) if s.kd_weight else '—'} |"
          for s in p.systems),
        "",
    ]
    if not p.changes:
        lines.append("Changes since the protocol was fixed: none.")
    else:
        lines += [
            f"Changes since the protocol was fixed ({len(p.changes)}; "
            f"{sum(c.after_test for c in p.changes)} after a test number was seen):",
            "",
            "| date | change | why | after a test number |",
            "|---|---|---|---|",
            *(f"| {c.date} | {_cell(c.what)} | {_cell(c.why)} | {'**yes**' if c.after_test else 'no'} |"
              for c in p.changes),
        ]
    return "\n".join(lines) + "\n"
