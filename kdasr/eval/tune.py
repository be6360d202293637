"""`kdasr tune`: choose inference-time settings on dev, never on test. Torch-free.

Every point of a grid over `DecodeOptions` fields (beam, ctc_weight, lm_weight + length_bonus for
shallow fusion, rescore + rescore_weight for n-best rescoring with the LM or BERT, ...) decodes the
dev manifest with one loaded model; each point's result record (kdasr.eval.results, per-utterance
counts included) is cached on disk under a key of everything that decides its output (model and
teacher files, manifest content, limit, decoding), written atomically, so a killed run resumes
and a second run decodes nothing. The best point (lowest WER, then CER, then grid order) is
written as an options file that `kdasr eval --options` and `kdasr bench --system` apply, so the
test sets are decoded with exactly the dev-chosen settings."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KdasrError
from ..io_utils import atomic_write_text, file_sha256, file_stamp, read_json
from ..runtime import DecodeOptions
from ..spec.decode_options import option_fields
from .results import result_record, write_result
from .run import evaluate_manifest

OPTIONS_FORMAT = 1
# how a batch is cut, not what is decoded: not part of a point's identity
EXECUTION_FIELDS = ("batch_size", "max_batch_seconds")
_TEST_NAME = re.compile(r"test|(^|[^a-z])eval", re.IGNORECASE)


def _field_types() -> dict[str, type]:
    return {f.name: f.kind for f in option_fields()}


def _value(name: str, text: str, kind: type):
    try:
        return int(text) if kind is int else float(text) if kind is float else text
    except ValueError:
        raise KdasrError(f"{name}={text}: not a {kind.__name__}") from None


def parse_assignments(items: list[str], several: bool) -> dict[str, list]:
    """['lm_weight=0,0.1', 'beam=5'] -> {'lm_weight': [0.0, 0.1], 'beam': [5]}, typed like the
    DecodeOptions field; one value each unless `several`."""
    types, out = _field_types(), {}
    for item in items:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise KdasrError(f"{item!r}: expected NAME=VALUE" + ("[,VALUE...]" if several else ""))
        if name not in types:
            raise KdasrError(f"{name}: not a decoding option (one of {', '.join(types)})")
        if name in out:
            raise KdasrError(f"{name}: given twice")
        parts = [v.strip() for v in values.split(",")] if several else [values.strip()]
        out[name] = [_value(name, p, types[name]) for p in parts]
    return out


def refuse_test_manifest(manifest: Path, allow: bool) -> None:
    """Tuning on a test set is forbidden: refuse a manifest whose file or folder name says test
    (or eval, as CSJ's eval1-3), unless explicitly allowed."""
    for name in (Path(manifest).stem, Path(manifest).resolve().parent.name):
        if _TEST_NAME.search(name) and not allow:
            raise KdasrError(f"{manifest}: refusing to tune on what looks like a test set ({name!r}); tune on dev "
                             "(--allow-test-manifest overrides, e.g. for a dev set so named)")


@dataclass(frozen=True)
class TuneConfig:
    model_dir: Path
    manifest: Path
    work_dir: Path  # one cached record per point
    grid: dict[str, list] = field(default_factory=dict)
    fixed: dict[str, object] = field(default_factory=dict)  # set for every point
    lm_dir: Path | None = None
    limit: int | None = None
    threads: int | None = None
    precision: str | None = None  # None: the model's recommendation (CPU), else fp32
    system: str = ""


@dataclass(frozen=True)
class Point:
    given: dict  # the fixed settings and this point's grid values
    opts: DecodeOptions
    record: dict
    cached: bool


def grid_points(fixed: dict, grid: dict[str, list]) -> list[dict]:
    names = list(grid)
    return [{**fixed, **dict(zip(names, values))} for values in itertools.product(*(grid[n] for n in names))]


def _dir_digest(path: Path | None) -> dict | None:
    """Model or teacher dir identity: the content of its small JSON files, size + mtime of the rest."""
    if path is None:
        return None
    out = {}
    for p in sorted(Path(path).iterdir()):
        if p.is_file():
            out[p.name] = file_sha256(p) if p.suffix == ".json" else file_stamp(p)
    return out


def point_key(cfg: TuneConfig, opts: DecodeOptions, model_id: dict, lm_id: dict | None, manifest_id: str,
              precision: str = "fp32") -> str:
    """precision: the one that ran (the model's recommendation when cfg.precision is None)."""
    decoding = {k: v for k, v in dataclasses.asdict(opts).items() if k not in EXECUTION_FIELDS}
    what = {"model": model_id, "lm": lm_id, "manifest": manifest_id, "limit": cfg.limit, "precision": precision,
            "decoding": decoding}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _needs_teachers(opts: DecodeOptions, transcriber, label: str) -> None:
    need = {"lm"} if opts.lm_weight else set()
    if opts.rescore != "none":
        need.add(opts.rescore)
    for kind in sorted(need):
        if transcriber.teacher(kind) is None:
            raise KdasrError(f"{kind} needed by the point {label}, but no exported {kind}: give --lm DIR "
                             "(kdasr export-lm)")


def run_tune(cfg: TuneConfig, progress: Callable[[str], None] = lambda m: None) -> list[Point]:
    """Decode every grid point not yet cached; return all points in grid order."""
    from ..runtime import Transcriber

    if not Path(cfg.manifest).is_file():
        raise KdasrError(f"{cfg.manifest}: no such manifest")
    points = grid_points(cfg.fixed, cfg.grid)
    t = Transcriber(cfg.model_dir, threads=cfg.threads, precision=cfg.precision, lm=cfg.lm_dir, bert=cfg.lm_dir,
                    vad=False)  # scored like kdasr eval: each manifest slice whole
    t.model.remember_encodings()  # every point decodes the same dev batches: encode them once
    t.remember_rescores()  # and a rescoring teacher meets the same n-best at every weight: score them once
    try:
        options = [t.recommended_options(**given) for given in points]
    except ValueError as e:
        raise KdasrError(f"grid: {e}") from None
    for given, o in zip(points, options):
        _needs_teachers(o, t, _label(given))
    model_id, lm_id = _dir_digest(Path(cfg.model_dir)), _dir_digest(cfg.lm_dir)
    manifest_id = file_sha256(cfg.manifest)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for n, (given, opts) in enumerate(zip(points, options), 1):
        path = cfg.work_dir / f"{point_key(cfg, opts, model_id, lm_id, manifest_id, t.model.precision)}.json"
        if path.is_file():
            try:
                out.append(Point(given, opts, json.loads(path.read_text(encoding="utf-8")), True))
                progress(f"[{n}/{len(points)}] {_label(given)}: cached")
                continue
            except json.JSONDecodeError:
                pass  # a file not written by us (writes are atomic): decode again
        progress(f"[{n}/{len(points)}] {_label(given)}: decoding {cfg.manifest}")
        t0 = time.perf_counter()
        report = evaluate_manifest(cfg.manifest, None, limit=cfg.limit, transcriber=t, opts=opts)
        record = result_record(cfg.system or str(cfg.model_dir), cfg.manifest, report, time.perf_counter() - t0,
                               cfg.threads, limit=cfg.limit, model=str(cfg.model_dir),
                               lm=str(cfg.lm_dir) if cfg.lm_dir else None, decoding=dataclasses.asdict(opts),
                               device="cpu", precision=t.model.precision, tune_point=given)
        write_result(path, record)
        out.append(Point(given, opts, record, False))
    return out


def _label(given: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in given.items()) or "(model's)"


def best_point(points: list[Point]) -> Point:
    """Lowest WER, then lowest CER; the first in grid order on a tie (NaN rates rank last)."""
    def key(ip):
        i, p = ip
        wer, cer = p.record["wer"], p.record["cer"]
        return (wer if wer == wer else float("inf"), cer if cer == cer else float("inf"), i)

    return min(enumerate(points), key=key)[1]


def tune_table(points: list[Point], best: Point) -> str:
    names = list(dict.fromkeys(k for p in points for k in p.given))
    lines = ["| " + " | ".join(names) + " | WER % | CER % | RTFx | |", "|" + "---:|" * (len(names) + 3) + "---|"]
    for p in points:
        r = p.record
        cells = [f"{p.given[k]:g}" if isinstance(p.given.get(k), float) else str(p.given.get(k, "")) for k in names]
        rtfx = f"{r['rtfx']:.1f}" if r.get("rtfx") else "–"
        mark = "best" if p is best else ("cached" if p.cached else "")
        lines.append("| " + " | ".join(cells) + f" | {r['wer']:.2f} | {r['cer']:.2f} | {rtfx} | {mark} |")
    # the encoder's outputs are computed by the first point decoded and reused by the rest (remember_encodings),
    # and every point is timed under whatever else the machine runs: the column is no speed comparison
    lines += ["", "RTFx: wall time of this run; the first point decoded also ran the encoder, the others reused its "
              "output, and no other load was held off. Compare speed with `kdasr bench --system`."]
    return "\n".join(lines)


def options_document(cfg: TuneConfig, points: list[Point], best: Point) -> dict:
    r = best.record
    return {
        "kdasr_options": OPTIONS_FORMAT,
        "decoding": dataclasses.asdict(best.opts),
        "given": best.given,
        "lm": str(cfg.lm_dir) if cfg.lm_dir else None,
        "tuned_on": {"manifest": str(cfg.manifest), "set": r["set"], "utterances": r["utterances"],
                     "limit": cfg.limit, "wer": r["wer"], "cer": r["cer"]},
        "model": str(cfg.model_dir), "precision": r.get("precision") or cfg.precision or "fp32",
        "grid": cfg.grid, "fixed": cfg.fixed, "points": len(points),
    }


def write_options(path: Path, doc: dict) -> None:
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


@dataclass(frozen=True)
class OptionsFile:
    decoding: dict  # DecodeOptions fields
    lm: Path | None
    path: Path


def read_options(path: Path) -> OptionsFile:
    """An options file from `kdasr tune --out` (or written by hand with a "decoding" object).
    KdasrError (one line) when it cannot be read or holds unknown / invalid fields."""
    doc = read_json(path, "cannot read the options file")
    decoding = doc.get("decoding") if isinstance(doc, dict) else None
    if not isinstance(decoding, dict):
        raise KdasrError(f"{path}: no \"decoding\" object (write it with kdasr tune --out)")
    unknown = sorted(set(decoding) - set(_field_types()))
    if unknown:
        raise KdasrError(f"{path}: unknown decoding option(s) {', '.join(unknown)}")
    try:
        DecodeOptions(**decoding)
    except (TypeError, ValueError) as e:
        raise KdasrError(f"{path}: {e}") from None
    lm = doc.get("lm")
    return OptionsFile(decoding, Path(lm) if lm else None, Path(path))
