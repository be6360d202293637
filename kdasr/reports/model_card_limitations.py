"""The model card's "Limitations": those the facts support (corpus, gaps between sets, units,
training length), then the generic ones."""

from __future__ import annotations

import re

from .model_card_facts import Facts, ci
from .model_card_format import decimals

# Sets of corpus v2 that measure a gap against `test`, and what each holds (DESIGN.md §5).
GAPS = {"test_heldout": "held-out voices", "test_neural_heldout": "a held-out neural voice",
        "test_noisy": "the test sentences with noise, rooms, telephone band and codecs"}
UNIT_CHARS = re.compile(r"^[a-z'▁]*$")  # what the text policy lets a unit hold (special pieces aside)


def _gaps(f: Facts, boot: tuple[int, int]) -> list[str]:
    """WER on the held-out / noisy sets against `test`, from the records."""
    by = {r["set"]: r for r in f.records}
    present = [s for s in GAPS if s in by]
    if not present:
        return []
    base = by.get("test")
    if base is None:
        return [f"Gaps on {', '.join(present)}: no `test` record to compare with."]
    out, base_ci = [], ci(base, "word_errors", "words", boot)
    engines = (f.corpus or {}).get("hours_by_engine", {})
    for name in present:
        r, gap_ci = by[name], ci(by[name], "word_errors", "words", boot)
        who = f" ({', '.join(sorted(engines[name]))})" if name in engines else ""
        beyond = ""
        if gap_ci is not None and base_ci is not None:  # independent sets: do the two intervals separate?
            apart = gap_ci.low > base_ci.high or gap_ci.high < base_ci.low
            beyond = "; the two 95 % intervals do not overlap" if apart else "; the two 95 % intervals overlap"
        out.append(f"{GAPS[name].capitalize()}{who}: WER {r['wer']:.2f} % on {name} against {base['wer']:.2f} % on "
                   f"test ({r['wer'] - base['wer']:+.2f} points{beyond}).")
    return out


def limitations(f: Facts, boot: tuple[int, int]) -> list[str]:
    facts, t, c = [], f.spec.training, f.corpus
    sets = [r["set"] for r in f.records]
    if c is not None:
        voices, conditions = list(c["sources"].get("voices", {})), list(c["sources"].get("conditions", {}))
        real = c["sources"].get("real speech", {})
        if real:
            hours = c.get("train_hours", {})
            origin = ", ".join(v.get("from", k) for k, v in real.items())
            facts.append(f"Real and synthetic speech: {decimals(hours.get('real'), 2)} h of voice acting ({origin}) "
                         f"beside {decimals(hours.get('synthetic'), 2)} h of TTS voices ({', '.join(voices)}). "
                         "Real speech here is acted, studio-recorded game dialogue at 11 kHz: conversational, "
                         "far-field and telephone speech are not covered.")
        else:
            facts.append(f"Synthetic voices only: every utterance of the corpus was spoken by a TTS engine "
                         f"({', '.join(voices)})" + (f", then augmented ({', '.join(conditions)})."
                                                     if conditions else "."))
        outside = [s for s in sets if s not in c["speech"]]
        if sets and not outside and not real:
            facts.append("No real recorded speech was measured: every set in the evaluation above is a split of "
                         "this synthetic corpus.")
        elif outside:
            facts.append(f"Sets not described by the corpus build info: {', '.join(outside)} (what speech they hold "
                         "is not recorded here).")
        spoken = (c.get("text", {}).get("speech") or {}).get("by_source") or c["sources"].get("text", {})
        text = list(spoken)
        games = " and acted game dialogue" if real else ""
        facts.append(f"Domain: read sentences from {', '.join(text)}{games} only (sources above); other vocabulary "
                     "and conversational speech are not covered.")
    facts += _gaps(f, boot)
    if f.spec.language == "en":
        facts.append("English only (model.json language 'en'; English training text).")
    if f.units is not None:
        special = set(f.spec.special_ids.to_dict().values())
        odd = [p for i, p in enumerate(f.units) if i not in special and not UNIT_CHARS.match(p)]
        if not odd:
            facts.append(f"Output is lowercase a–z, apostrophes and spaces: none of its {len(f.units)} units holds a "
                         "digit, punctuation mark or capital, so numbers can only come out as words (kdasr's text "
                         "policy rejects transcripts with digits; `kdasr eval` does not score such references).")
        else:
            facts.append(f"{len(odd)} of its units hold characters outside a–z and apostrophes (e.g. "
                         f"{', '.join(odd[:5])}).")
    if t.get("train_hours") and t.get("train_utterances"):
        mean = 3600 * t["train_hours"] / t["train_utterances"]
        facts.append(f"Long audio: trained on utterances of {mean:.1f} s on average; inputs longer than "
                     f"{f.spec.decoding.max_segment_seconds:g} s are cut at low-energy points (`kdasr transcribe` "
                     "also runs a VAD by default), which loses context across cuts. Long-form accuracy was not "
                     "measured here: segment long recordings (VAD) first.")
    params = t.get("parameters")
    if isinstance(params, int) and t.get("train_hours"):
        facts.append(f"Small: {params:,} parameters, {t['train_hours']} h of training speech.")
    failed = [f"{r['set']} ({r['failures']})" for r in f.records if r.get("failures")]
    if failed:
        facts.append(f"Inputs that failed to decode in the eval runs: {', '.join(failed)}.")
    generic = ["Not measured, so expect worse: real microphones and rooms, accented, child, elderly or "
               "disordered speech; spontaneous speech (hesitations, overlapping talkers); real telephone and "
               "far-field audio; names and technical terms.",
               "No punctuation, casing or inverse text normalisation (numbers, dates) in the output.",
               "Not for decisions about people, captions of record, or any safety-relevant use."]
    if c is None:
        generic.insert(0, "kdasr's demo corpora are synthetic (TTS voices); no corpus build info was given "
                          "(`--corpus`), so the data-specific limits are not stated here.")
    return (["## Limitations: what it will not do well", "", "From the facts above:", "",
             *(f"- {x}" for x in facts), "", "Generic (not measured for this model):", "",
             *(f"- {x}" for x in generic), ""])
