"""Facts for `kdasr model-card` (kdasr.reports.model_card), read from disk and checked: the model
dir's ModelSpec and tokenizer units, the result records that describe this model, its entry in a
`kdasr bench --system` JSON, the corpus build_info.json. Torch-free. Every bad file is one
KdasrError line naming it; an optional input not given is None / empty, never an error."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import KdasrError
from ..eval.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED, Interval, rate_interval
from ..eval.results import per_utterance
from ..io_utils import read_json
from ..spec.decode_options import DecodeOptions, given_fields
from ..spec.modelspec import ModelSpec, load_model_spec
from .paper_table import DEFAULT_SETS, _is_record, load_bench, load_records


@dataclass(frozen=True)
class CardInputs:
    model_dir: Path
    results: tuple[Path, ...] = ()
    bench: Path | None = None
    corpus: Path | None = None
    system: str | None = None  # which system's records / bench entry describe this model
    references: tuple[Path, ...] = ()  # records of other recognisers on the same sets (rows beside this model)
    command: str = ""  # the command line that generated the card (stated in the card)
    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED


@dataclass
class Facts:
    spec: ModelSpec
    model_dir: Path
    units: list[str] | None  # the tokenizer's pieces, None when the dir has no tokenizer.model
    records: list[dict]
    records_note: str  # why these records (or why none)
    bench: dict | None
    bench_entry: dict | None
    corpus: dict | None
    references: list[dict] = field(default_factory=list)  # other systems' records, checked like ours


RECORD_FIELDS = {"system": str, "set": str, "wer": (int, float), "cer": (int, float), "utterances": int,
                 "manifest": str}
BENCH_MODE = ("rtfx", "latency_ms_p50", "latency_ms_p95")


def _same_dir(a, b) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def select_records(paths: tuple[Path, ...], model_dir: Path, system: str | None) -> tuple[list[dict], str]:
    if not paths:
        return [], "no result records given (`--results`: files or folders of `kdasr eval --json` records)"
    for p in paths:  # an explicitly named file must be a record (folders may hold other JSON)
        if Path(p).is_file():
            doc = read_json(p, "not a JSON result record")
            if not _is_record(doc):
                raise KdasrError(f"{p}: not a result record of `kdasr eval --json` (no system/set/wer/cer)")
    records = load_records(list(paths))
    for r in records:
        bad = [k for k in RECORD_FIELDS if not isinstance(r.get(k), RECORD_FIELDS[k])]
        if bad:
            raise KdasrError(f"{r['_file']}: result record without a valid {', '.join(bad)}")
    systems = list(dict.fromkeys(r["system"] for r in records))
    if system is not None:
        chosen = [r for r in records if r["system"] == system]
        if not chosen:
            raise KdasrError(f"--system {system!r}: no result record of it (systems: {', '.join(systems)})")
        return chosen, f"records of system {system!r}"
    if len(systems) == 1:
        return records, f"records of system {systems[0]!r}"
    mine = [r for r in records if r.get("model") and _same_dir(r["model"], model_dir)]
    if len({r["system"] for r in mine}) == 1:
        return mine, f"records of system {mine[0]['system']!r}, decoded with {model_dir}"
    raise KdasrError(f"the records hold several systems ({', '.join(systems)}): choose one with --system")


def bench_entry(bench: dict | None, model_dir: Path, system: str | None, records: list[dict]) -> dict | None:
    if bench is None:
        return None
    entries = bench["systems"]
    where = bench.get("_file", "the bench JSON")
    for e in entries if isinstance(entries, list) else [None]:
        ok = isinstance(e, dict) and isinstance(e.get("name"), str) and isinstance(e.get("decoding"), dict) and all(
            isinstance(e.get(m), dict) and all(k in e[m] for k in BENCH_MODE) for m in ("batch1", "batch16"))
        if not ok:
            raise KdasrError(f"{where}: a system entry without name/decoding/batch1/batch16 timings")
    if not all(k in bench for k in ("utterances", "manifest", "seconds_audio", "threads", "repeats")):
        raise KdasrError(f"{where}: no utterances/manifest/seconds_audio/threads/repeats")
    names = [system] if system else list(dict.fromkeys(r["system"] for r in records))
    for e in entries:
        if e.get("name") in names:
            return e
    for e in entries:
        if e.get("model") and _same_dir(e["model"], model_dir):
            return e
    return entries[0] if len(entries) == 1 and not system else None


def load_corpus(path: Path | None) -> dict | None:
    if path is None:
        return None
    doc = read_json(path, "cannot read the corpus build info")
    if not isinstance(doc, dict) or not {"speech", "sources"} <= set(doc):
        raise KdasrError(f"{path}: not a corpus build_info.json (`kdasr data synth` writes one; no speech/sources)")
    for key, value in (("speech", doc["speech"]), ("sources", doc["sources"]),
                       ("hours_by_engine", doc.get("hours_by_engine", {}))):
        if not (isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())):
            raise KdasrError(f"{path}: '{key}' must map names to objects")
    return doc


def units(model_dir: Path) -> list[str] | None:
    path = model_dir / "tokenizer.model"
    if not path.is_file():
        return None
    from ..text import Tokenizer

    tok = Tokenizer(path)
    return [tok.id_to_piece(i) for i in range(tok.vocab_size)]


def gather(inputs: CardInputs) -> Facts:
    model_dir = Path(inputs.model_dir)
    spec = load_model_spec(model_dir)
    records, note = select_records(tuple(inputs.results), model_dir, inputs.system)
    bench = load_bench(inputs.bench)
    if bench is not None:
        bench["_file"] = str(inputs.bench)
    entry = bench_entry(bench, model_dir, inputs.system, records)
    return Facts(spec, model_dir, units(model_dir), records, note, bench, entry, load_corpus(inputs.corpus),
                 reference_records(tuple(inputs.references)))


def reference_records(paths: tuple[Path, ...]) -> list[dict]:
    """Records of other recognisers (e.g. `kdasr eval-reference` of whisper) to show beside this model."""
    for p in paths:
        if Path(p).is_file() and not _is_record(read_json(p, "not a JSON result record")):
            raise KdasrError(f"{p}: not a result record of `kdasr eval --json` (no system/set/wer/cer)")
    records = load_records(list(paths)) if paths else []
    for r in records:
        if bad := [k for k in RECORD_FIELDS if not isinstance(r.get(k), RECORD_FIELDS[k])]:
            raise KdasrError(f"{r['_file']}: result record without a valid {', '.join(bad)}")
    return records


# ---- small shared readings of the facts ----------------------------------------------------

def set_order(records: list[dict]) -> list[dict]:
    rank = {s: i for i, s in enumerate(DEFAULT_SETS)}
    return sorted(records, key=lambda r: (rank.get(r["set"], len(rank)), r["set"]))


def decoding_key(d: dict) -> dict:
    """A decoding over DecodeOptions' defaults, without the fields that change speed only."""
    full = {**asdict(DecodeOptions()), **d}
    return {k: v for k, v in full.items() if k not in ("batch_size", "max_batch_seconds")}


def recommended(spec: ModelSpec) -> dict:
    return asdict(spec.decoding)


def given(spec: ModelSpec) -> dict:
    return given_fields(spec.decoding)


def ci(rec: dict | None, errors: str, totals: str, boot: tuple[int, int]) -> Interval | None:
    """The record's rate with its bootstrap interval, or None (no per-utterance counts)."""
    try:
        cols = per_utterance(rec) if rec else None
    except ValueError as e:
        raise KdasrError(f"{rec.get('_file', 'a result record')}: {e}") from None
    if cols is None or not cols[totals].sum():
        return None
    return rate_interval(cols[errors], cols[totals], *boot)
