"""The model card's "Training": this run, its distillation, and the runs its weights came
through (initialised_from / branched_from)."""

from __future__ import annotations

from .model_card_facts import Facts
from .model_card_format import decimals


def _history(training, depth: int = 0) -> list[str]:
    """initialised_from / branched_from, each with that source's own history, as nested bullets."""
    out, pad = [], "  " * depth
    init, branch = training.get("initialised_from"), training.get("branched_from")
    if init:
        src = init.get("training", {})
        out.append(f"{pad}- weights initialised from `{init.get('path')}` (fresh optimiser and schedule); that "
                   f"model: {_summary_line(src)}")
        out += _history(src, depth + 1)
    if branch:
        out.append(f"{pad}- branched from `{branch.get('path')}` at step {branch.get('step')} (epoch "
                   f"{branch.get('epoch')}, {decimals(branch.get('elapsed_s', 0) / 60, 0)} min trained), which was "
                   f"trained with KD {branch.get('kd', 'none')} (λ {branch.get('kd_weight', 0)}); its optimiser, "
                   "schedule, data position and RNGs carried on")
        out += _history(branch, depth + 1)
    return out


def _summary_line(t) -> str:
    bits = [f"{t['train_hours']} h / {t['train_utterances']} utterances of `{t['train_manifest']}`"
            if "train_manifest" in t else "",
            f"config {t['preset']}" if "preset" in t else "", f"KD {t.get('kd', 'none')}",
            f"{t['steps']} steps" if "steps" in t else "", f"{t['epochs']} epochs" if "epochs" in t else "",
            f"{decimals(t['train_seconds'] / 60, 0)} min" if "train_seconds" in t else "",
            f"started {t['started']}" if "started" in t else ""]
    return ", ".join(b for b in bits if b)


def training(f: Facts) -> list[str]:
    t = f.spec.training
    out = ["## Training", ""]
    if not t:
        return out + ["model.json records no training summary.", ""]
    out.append(f"- This run: {_summary_line(t)}")
    if "averaged_checkpoints" in t:
        out.append(f"- Exported from: {', '.join(t['averaged_checkpoints'])} (averaged when several)")
    if t.get("kd", "none") == "none":
        out.append("- Distillation: none (label-smoothed cross-entropy on the transcripts only)")
    else:
        out.append(f"- Distillation: {t['kd']} — teacher {t.get('kd_teacher', '?')} (`{t.get('kd_teacher_path', '?')}`"
                   f"), mode {t.get('kd_mode', '?')}, λ = {t.get('kd_weight')}, T = {t.get('kd_temperature', '?')}, "
                   f"K = {t.get('kd_top_k', '?')}, window {t.get('kd_window', '?')}; soft labels "
                   f"`{t.get('kd_soft_labels', '?')}` ({t.get('kd_utterances_without_soft_labels', '?')} training "
                   "utterances without any)")
    history = _history(t)
    out += (["- Protocol (where the weights came from):", *("  " + h for h in history)] if history
            else ["- Protocol: trained from random initialisation"])
    return out + [""]
