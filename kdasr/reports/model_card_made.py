"""The model card's "How it was made": the train, export, eval and bench commands rebuilt from
model.json and the records."""

from __future__ import annotations

import shlex

from .model_card_facts import CardInputs, Facts, given, set_order


def _flags(decoding: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(decoding.items()))


def _train_commands(t, inherited: dict | None = None) -> list[str]:
    """Oldest first: the runs this model's weights came through, rebuilt from their summaries. A
    branch record does not repeat --train/--config: branching requires the same ones (`inherited`)."""
    t = {**(inherited or {}), **t}
    out = []
    if t.get("initialised_from"):
        out += _train_commands(t["initialised_from"].get("training", {}))
    if t.get("branched_from"):
        same = {k: t[k] for k in ("train_manifest", "preset") if k in t}
        out += _train_commands({k: v for k, v in t["branched_from"].items() if k != "path"}, same)
    if "train_manifest" not in t:
        return out
    cmd = f"kdasr train --train {t['train_manifest']} --config {t.get('preset', '?')}"
    if t.get("kd", "none") != "none":
        soft = t.get("kd_soft_labels", "SOFT_LABELS")
        cmd += f" --kd {t['kd']} --soft-labels {soft} --kd-weight {t.get('kd_weight')}"
    if t.get("initialised_from"):
        cmd += f" --init-from {t['initialised_from'].get('path')}"
    if t.get("branched_from"):
        cmd += f" --branch-from {t['branched_from'].get('path')}"
    if "step" in t:
        cmd += f"   # stopped at step {t['step']} (epoch {t.get('epoch')}) where the branch left it"
    return out + [cmd]


def how_it_was_made(f: Facts, inputs: CardInputs) -> list[str]:
    t = f.spec.training
    out = ["## How it was made", "",
           "Training (rebuilt from model.json's training summary, oldest run first; --dev, --tokenizer, --out and "
           "time limits are not recorded):", "", "```sh", *(_train_commands(t) or ["(no training summary)"]), "```",
           "", "Export (rebuilt from model.json: checkpoints, variants, recommended decoding/precision):", "", "```sh"]
    variants = sorted({p for g in f.spec.graphs.values() for p in g.files if p != "fp32"})
    cmd = f"kdasr export {' '.join(t.get('averaged_checkpoints', ['CKPT']))} --out {f.model_dir}"
    cmd += "".join(f" --quantize {v}" for v in variants) + "".join(f" --recommend-precision {d}={p}"
                                                                   for d, p in f.spec.precision.items())
    out += [" ".join(x for x in (cmd, _flags(given(f.spec))) if x), "```", ""]
    if f.records:
        out += ["Evaluation (rebuilt from the result records' fields):", "", "```sh"]
        for r in set_order(f.records):
            extra = "".join(f" --{k} {r[k]}" for k in ("threads", "limit", "precision") if r.get(k))
            extra += f" --options {r['options_file']}" if r.get("options_file") else ""
            out.append(f"kdasr eval --model {r.get('model', '?')} --manifest {r['manifest']} --system "
                       f"{shlex.quote(r['system'])}{extra} --json {r['_file']}")
        out += ["```", ""]
    if f.bench and f.bench.get("command"):
        out += ["Benchmark (as recorded in the bench JSON):", "", "```sh", f.bench["command"], "```", ""]
    if inputs.command:
        out += ["This card:", "", "```sh", inputs.command, "```", ""]
    return out
