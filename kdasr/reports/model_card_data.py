"""The model card's "Data and licences", from model.json's training summary and the corpus
build_info.json."""

from __future__ import annotations

from .model_card_facts import Facts
from .model_card_format import decimals


def data_and_licences(f: Facts) -> list[str]:
    t, c = f.spec.training, f.corpus
    out = ["## Data and licences", ""]
    if "train_manifest" in t:
        out.append(f"Trained on `{t['train_manifest']}`: {t.get('train_utterances')} utterances, "
                   f"{t.get('train_hours')} h (model.json).")
    if c is None:
        return out + ["", "Corpus build info: not given (`--corpus DIR/build_info.json`, written by `kdasr data "
                      "synth`), so sources, licences and voices are not stated here.", ""]
    train = c["speech"].get("train", {})
    if t.get("train_utterances") is not None and train.get("utterances") not in (None, t["train_utterances"]):
        out.append(f"**Warning:** the corpus build info describes a train split of {train.get('utterances')} "
                   f"utterances, the model was trained on {t['train_utterances']}: probably not the same corpus.")
    out += ["", f"Corpus version {c.get('corpus_version', '?')} (build_info.json):", "",
            "| split | utterances | hours | speakers | engines (hours) |", "|---|---:|---:|---:|---|"]
    engines = c.get("hours_by_engine", {})
    for name, s in c["speech"].items():
        e = ", ".join(f"{k} {v:.2f}" for k, v in sorted(engines.get(name, {}).items(), key=lambda kv: -kv[1]))
        out.append(f"| {name} | {s.get('utterances', '–')} | {decimals(s.get('hours'), 2)} | "
                   f"{s.get('speakers', '–')} | {e} |")
    out += ["", "| source | kind | from | licence |", "|---|---|---|---|"]
    for kind, items in c["sources"].items():
        out += [f"| {k} | {kind} | {v.get('from', '')} | {v.get('licence', '')} |" for k, v in items.items()]
    text = c.get("text", {})
    for split, what in (("speech", "training speech"), ("teacher", "teacher-only")):
        by = text.get(split, {}).get("by_source") if isinstance(text.get(split), dict) else None
        if isinstance(by, dict):
            out += ["", f"Text of the {what} split: " + ", ".join(
                f"{k} {v.get('words', '?'):,} words" if isinstance(v.get("words"), int) else k for k, v in by.items())
                + "."]
    leaks = c.get("leak_and_duplicate_checks", {})
    if leaks:
        out += ["", "Leak checks: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in leaks.items()) + "."]
    return out + [""]
