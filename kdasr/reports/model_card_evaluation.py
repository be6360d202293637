"""The model card's "Evaluation": WER/CER per set with bootstrap intervals, and other
recognisers' records on the same utterances beside them."""

from __future__ import annotations

from ..eval.bootstrap import METHOD
from .bench_systems import describe
from .model_card_facts import Facts, ci, decoding_key, recommended, set_order


def _interval(rec: dict, errors: str, totals: str, boot: tuple[int, int]) -> str:
    interval = ci(rec, errors, totals, boot)
    return "–" if interval is None else f"[{interval.low:.2f}, {interval.high:.2f}]"


def evaluation(f: Facts, boot: tuple[int, int]) -> list[str]:
    out = ["## Evaluation", ""]
    if not f.records:
        return out + [f"Not measured here: {f.records_note}.", ""]
    rec_dec = decoding_key(recommended(f.spec))
    out += [f"From {f.records_note}. WER/CER in %, 95 % interval by bootstrap over utterances.", "",
            "| set | utterances | words | WER % | 95 % interval | CER % | 95 % interval | decoding | failures |",
            "|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    other = []
    for r in set_order(f.records):
        dec = r.get("decoding")
        if isinstance(dec, dict) and decoding_key(dec) != rec_dec:
            other.append(r["set"])
        out.append(f"| {r['set']} | {r['utterances']} | {r.get('words', '–')} | {r['wer']:.2f} | "
                   f"{_interval(r, 'word_errors', 'words', boot)} | {r['cer']:.2f} | "
                   f"{_interval(r, 'char_errors', 'chars', boot)} | "
                   f"{describe(dec) if isinstance(dec, dict) else 'not recorded'} | {r.get('failures', 0)} |")
    out += ["", "Interval: " + METHOD.replace("paired ", "").format(n=boot[0], seed=boot[1], level=95) + "."]
    out += _beside(f)
    if other:
        out += ["", f"**Note:** {', '.join(other)} decoded otherwise than the recommended "
                f"{describe(recommended(f.spec))}."]
    return out + [""]


def _ids(record: dict) -> set | None:
    cols = record.get("per_utterance")
    return set(cols["ids"]) if isinstance(cols, dict) and isinstance(cols.get("ids"), list) else None


def _beside(f: Facts) -> list[str]:
    """WER of other recognisers on the sets this model was scored on (`--reference`), same utterances only."""
    if not f.references:
        return []
    mine = {r["set"]: r for r in f.records}
    systems = list(dict.fromkeys(r["system"] for r in f.references))
    by = {(r["system"], r["set"]): r for r in f.references}
    out = ["", "Beside other recognisers (`--reference` records; WER %, CER % in brackets; a cell is left out "
           "unless both scored the same utterances of the set):", "",
           "| set | this model | " + " | ".join(systems) + " |", "|---|---:|" + "---:|" * len(systems)]
    for r in set_order(list(mine.values())):
        ids = _ids(r)
        cells = []
        for name in systems:
            ref = by.get((name, r["set"]))
            same = ref is not None and (_ids(ref) == ids if ids is not None and _ids(ref) is not None
                                        else ref["utterances"] == r["utterances"])
            cells.append(f"{ref['wer']:.2f} ({ref['cer']:.2f})" if same else "–")
        out.append(f"| {r['set']} | {r['wer']:.2f} ({r['cer']:.2f}) | " + " | ".join(cells) + " |")
    return out
