"""Whisper's CTranslate2 weights (whisper_weights.py) as transformers' WhisperForConditionalGeneration,
and back: `reference_model` is the independent torch reference `kdasr import-whisper --check` runs
(export/whisper_check.py); `ct2_decoder_variables` maps a (fine-tuned) model's decoder back to the
CT2 names the graph writers read (export/whisper_graphs.py), so a whisper trained by kdasr
(training/whisper_student.py) exports through the same code as an imported one. Training and
export only: transformers is imported when a function runs, never by the runtime."""

from __future__ import annotations

import re

import numpy as np
import torch

from .whisper_weights import CT2Checkpoint


def layer_count(ckpt: CT2Checkpoint, side: str) -> int:
    return len({k.split("/")[1] for k in ckpt.variables if re.match(rf"{side}/layer_\d+/", k)})


def hf_state(ckpt: CT2Checkpoint, enc_layers: int, dec_layers: int) -> dict[str, torch.Tensor]:
    t = lambda n: torch.from_numpy(np.asarray(ckpt.get(n), np.float32).copy())  # noqa: E731
    s = {"model.encoder.conv1.weight": t("encoder/conv1/weight"), "model.encoder.conv1.bias": t("encoder/conv1/bias"),
         "model.encoder.conv2.weight": t("encoder/conv2/weight"), "model.encoder.conv2.bias": t("encoder/conv2/bias"),
         "model.encoder.embed_positions.weight": t("encoder/position_encodings/encodings"),
         "model.encoder.layer_norm.weight": t("encoder/layer_norm/gamma"),
         "model.encoder.layer_norm.bias": t("encoder/layer_norm/beta"),
         "model.decoder.embed_tokens.weight": t("decoder/embeddings/weight"),
         "model.decoder.embed_positions.weight": t("decoder/position_encodings/encodings"),
         "model.decoder.layer_norm.weight": t("decoder/layer_norm/gamma"),
         "model.decoder.layer_norm.bias": t("decoder/layer_norm/beta")}

    def norm(dst: str, src: str) -> None:
        s[f"{dst}.weight"], s[f"{dst}.bias"] = t(f"{src}/gamma"), t(f"{src}/beta")

    def lin(dst: str, src: str) -> None:
        s[f"{dst}.weight"], s[f"{dst}.bias"] = t(f"{src}/weight"), t(f"{src}/bias")

    def qkv(dst: str, src: str, fused: int) -> None:  # CT2's fused [q; k; v] (or [k; v]) rows
        w, b = t(f"{src}/weight"), t(f"{src}/bias")
        names = ["q_proj", "k_proj", "v_proj"][3 - fused :]
        for j, n in enumerate(names):
            s[f"{dst}.{n}.weight"] = w[j * w.shape[1] : (j + 1) * w.shape[1]]
            if n != "k_proj":
                s[f"{dst}.{n}.bias"] = b[j * w.shape[1] : (j + 1) * w.shape[1]]

    for side, layers in (("encoder", enc_layers), ("decoder", dec_layers)):
        for i in range(layers):
            d, c = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            norm(f"{d}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
            qkv(f"{d}.self_attn", f"{c}/self_attention/linear_0", 3)
            lin(f"{d}.self_attn.out_proj", f"{c}/self_attention/linear_1")
            norm(f"{d}.final_layer_norm", f"{c}/ffn/layer_norm")
            lin(f"{d}.fc1", f"{c}/ffn/linear_0")
            lin(f"{d}.fc2", f"{c}/ffn/linear_1")
            if side == "decoder":
                norm(f"{d}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
                lin(f"{d}.encoder_attn.q_proj", f"{c}/attention/linear_0")
                qkv(f"{d}.encoder_attn", f"{c}/attention/linear_1", 2)
                lin(f"{d}.encoder_attn.out_proj", f"{c}/attention/linear_2")
    return s


def reference_model(ckpt: CT2Checkpoint):
    """transformers' WhisperForConditionalGeneration holding the checkpoint's weights (fp32, eval)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    enc_layers, dec_layers = layer_count(ckpt, "encoder"), layer_count(ckpt, "decoder")
    heads, width = int(ckpt.get("decoder/num_heads")), ckpt.get("decoder/embeddings/weight").shape[1]
    cfg = WhisperConfig(vocab_size=ckpt.get("decoder/embeddings/weight").shape[0], num_mel_bins=80, d_model=width,
                        encoder_layers=enc_layers, decoder_layers=dec_layers, encoder_attention_heads=heads,
                        decoder_attention_heads=heads, encoder_ffn_dim=4 * width, decoder_ffn_dim=4 * width)
    model = WhisperForConditionalGeneration(cfg).eval()
    missing, unexpected = model.load_state_dict(hf_state(ckpt, enc_layers, dec_layers), strict=False)
    missing = [m for m in missing if m != "proj_out.weight"]  # tied to the embedding
    if missing or unexpected:
        raise ValueError(f"reference whisper: missing {missing[:4]}, unexpected {unexpected[:4]}")
    return model


def ct2_decoder_variables(model) -> dict[str, np.ndarray]:
    """The decoder of a WhisperForConditionalGeneration as CT2 variables (float32), the inverse of
    `hf_state`'s decoder part: q, k, v fused again ([q; k; v] self, [k; v] cross) with whisper's
    bias-free keys stored as zero biases, as CT2 stores them."""
    s = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {
        "decoder/embeddings/weight": s["model.decoder.embed_tokens.weight"],
        "decoder/position_encodings/encodings": s["model.decoder.embed_positions.weight"],
        "decoder/layer_norm/gamma": s["model.decoder.layer_norm.weight"],
        "decoder/layer_norm/beta": s["model.decoder.layer_norm.bias"]}

    def fused(hf: str, names: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        w = torch.cat([s[f"{hf}.{n}.weight"] for n in names])
        b = torch.cat([s[f"{hf}.{n}.bias"] if n != "k_proj" else torch.zeros(s[f"{hf}.{n}.weight"].shape[0])
                       for n in names])
        return w, b

    layers = 1 + max(int(k.split(".")[3]) for k in s if k.startswith("model.decoder.layers."))
    for i in range(layers):
        d, c = f"model.decoder.layers.{i}", f"decoder/layer_{i}"
        for hf, ct2 in (("self_attn_layer_norm", "self_attention/layer_norm"), ("encoder_attn_layer_norm",
                        "attention/layer_norm"), ("final_layer_norm", "ffn/layer_norm")):
            out[f"{c}/{ct2}/gamma"], out[f"{c}/{ct2}/beta"] = s[f"{d}.{hf}.weight"], s[f"{d}.{hf}.bias"]
        for hf, ct2 in (("self_attn.out_proj", "self_attention/linear_1"), ("fc1", "ffn/linear_0"),
                        ("fc2", "ffn/linear_1"), ("encoder_attn.q_proj", "attention/linear_0"),
                        ("encoder_attn.out_proj", "attention/linear_2")):
            out[f"{c}/{ct2}/weight"], out[f"{c}/{ct2}/bias"] = s[f"{d}.{hf}.weight"], s[f"{d}.{hf}.bias"]
        out[f"{c}/self_attention/linear_0/weight"], out[f"{c}/self_attention/linear_0/bias"] = fused(
            f"{d}.self_attn", ["q_proj", "k_proj", "v_proj"])
        out[f"{c}/attention/linear_1/weight"], out[f"{c}/attention/linear_1/bias"] = fused(
            f"{d}.encoder_attn", ["k_proj", "v_proj"])
    return {k: v.numpy() for k, v in out.items()}
