"""The "what was tried" list of `kdasr claim-verdicts`, in plain words from the claim table (systems,
seeds, sets, alternatives), the claim recipe's choices.json (T and K, λ, the same-λ comparison, ε of
the smoothing control, best-kd; every choice made on dev) and the bench JSON. Read defensively: a
section the file lacks is said to be missing, never guessed. Torch-free."""

from __future__ import annotations


def _g(x) -> str:
    """A number as the recipe wrote it (2.0 -> 2), anything else as it is."""
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _wer(x) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def _points(points, key) -> str:
    return ", ".join(f"{_g(q.get(key))}: {_wer(q.get('dev_wer'))}" for q in points if isinstance(q, dict))


def _table_lines(table: dict, baseline: str) -> list[str]:
    out = []
    plain = [s for s in table["systems"] if "+" not in s["system"]]
    alts = [s["system"] for s in table["systems"] if "+" in s["system"]]

    def seeds(s: dict) -> str:
        got = sorted({str(k) for v in s["sets"].values() if v for k in v.get("seeds", [])},
                     key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        return f"seeds {', '.join(got)}" if got else "no records"

    out.append("- Students trained and tested: " + "; ".join(
        f"{s['system']}{' (baseline)' if s['system'] == baseline else ''}, {seeds(s)}" for s in plain) + ".")
    out.append(f"- Test sets: {', '.join(table['sets'])}.")
    if alts:
        out.append("- Inference-time alternatives on trained students (each tuned on dev per seed): " + "; ".join(
            f"{s['system']}, {seeds(s)}" for s in table["systems"] if "+" in s["system"]) + ".")
    else:
        out.append("- No inference-time alternative (fusion, rescoring) in the claim table.")
    return out


def _choice_lines(choices: dict) -> list[str]:
    out = []
    tk = choices.get("tk")
    if isinstance(tk, dict) and isinstance(tk.get("points"), list):
        pts = [q for q in tk["points"] if isinstance(q, dict)]
        ts = ", ".join(dict.fromkeys(_g(q.get("temperature")) for q in pts))
        ks = ", ".join(dict.fromkeys(_g(q.get("top_k")) for q in pts))
        chosen = tk.get("chosen") or {}
        out.append(f"- T and K swept on dev: T ∈ {{{ts}}} × K ∈ {{{ks}}}, with {tk.get('system', '?')} at λ "
                   f"{_g(tk.get('kd_weight'))}, seed {tk.get('seed', '?')}, {tk.get('steps', '?')} steps; dev WER "
                   f"per point: " + ", ".join(f"T {_g(q.get('temperature'))} K {_g(q.get('top_k'))}: "
                                              f"{_wer(q.get('dev_wer'))}" for q in pts)
                   + f"; chosen T = {_g(chosen.get('temperature'))}, K = {_g(chosen.get('top_k'))}.")
    else:
        out.append("- T and K: no sweep in the choices file.")
    lams = choices.get("lambda")
    if isinstance(lams, dict) and lams:
        for name, lam in lams.items():
            pts = [q for q in (lam.get("points") or []) if isinstance(q, dict)] if isinstance(lam, dict) else []
            grid = ", ".join(_g(q.get("kd_weight")) for q in pts)
            chosen = lam.get("chosen") if isinstance(lam, dict) else None
            out.append(f"- λ of {name} swept on dev over {{{grid}}} (dev WER per λ: {_points(pts, 'kd_weight')}); "
                       f"chosen λ = {_g(chosen)}.")
    else:
        out.append("- λ: no sweep in the choices file.")
    same = choices.get("same_lambda")
    if isinstance(same, list) and same:
        for row in same:
            if isinstance(row, dict) and isinstance(row.get("dev_wer"), dict):
                out.append(f"- Utterance and context BERT-KD at the same λ {_g(row.get('kd_weight'))}, dev WER: "
                           + ", ".join(f"{k} {_wer(v)}" for k, v in row["dev_wer"].items()) + ".")
    elif isinstance(same, list):
        out.append("- Utterance vs context at the same λ: none (no λ both grids share, or one of the two absent).")
    smoothing = choices.get("label_smoothing")
    for name, ls in smoothing.items() if isinstance(smoothing, dict) else ():
        if isinstance(ls, dict):
            eps = ls.get("epsilon")
            eps = f"{eps:.4f}" if isinstance(eps, float) else _g(eps)
            out.append(f"- Smoothing control {name}: label smoothing ε = {eps}, matched to the mean entropy of the "
                       f"soft labels {ls.get('soft_labels', '?')}.")
    alternatives = choices.get("alternatives")
    best = alternatives.get("best_kd") if isinstance(alternatives, dict) else None
    if isinstance(best, dict) and best.get("chosen"):
        dev = best.get("mean_dev_wer") if isinstance(best.get("mean_dev_wer"), dict) else {}
        out.append(f"- Best KD student for the alternatives: {best['chosen']} (mean dev WER over seeds: "
                   + ", ".join(f"{k} {_wer(v)}" for k, v in dev.items()) + ").")
    where = choices.get("dev_set", "dev")
    out.append(f"- Every choice above was made on dev ({where}: "
               f"{', '.join(map(str, choices.get('dev_manifests') or [])) or '?'}), "
               f"evidence: {choices.get('evidence', '?')}; protocol {choices.get('protocol', '?')}.")
    return out


def tried_lines(table: dict, choices: dict | None, bench: dict | None, baseline: str) -> list[str]:
    """Plain Markdown bullets: what the claim run trained, chose on dev, decoded and timed."""
    out = _table_lines(table, baseline)
    out += _choice_lines(choices) if choices is not None else [
        "- No choices file given (--choices): the dev choices (T and K, λ, ε, best-kd) are not listed."]
    if bench is not None:
        names = [str(s.get("name")) for s in bench.get("systems") or [] if isinstance(s, dict)]
        out.append(f"- Decoding cost: one bench run of {len(names)} systems ({', '.join(names)}) on the first "
                   f"{bench.get('utterances', '?')} utterances of `{bench.get('manifest', '?')}`, "
                   f"{bench.get('threads', '?')} thread(s), best of {bench.get('repeats', '?')} rounds.")
    else:
        out.append("- Decoding cost: no bench JSON given (--bench).")
    return out
