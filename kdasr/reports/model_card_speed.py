"""The model card's "Speed": its entry of a `kdasr bench --system` run and the systems beside it,
else the eval runs' throughput."""

from __future__ import annotations

from .bench_systems import describe
from .model_card_facts import Facts, decoding_key, recommended
from .model_card_format import decimals


def _bench_beside(b: dict, mine: dict) -> list[str]:
    """The other systems of the same bench run (same audio, threads, machine), e.g. faster-whisper."""
    others = [e for e in b["systems"] if e is not mine]
    if not others:
        return []
    wer = lambda e: f"{e['wer']:.2f}" if isinstance(e.get("wer"), (int, float)) else "–"  # noqa: E731
    rows = [mine, *others]
    return ["", "In the same run (same audio, threads and machine):", "",
            "| system | RTFx b1 | RTFx b16 | latency p50 ms b1 | WER % |", "|---|---:|---:|---:|---:|",
            *(f"| {e['name']}{' (this model)' if e is mine else ''} | {decimals(e['batch1']['rtfx'])} | "
              f"{decimals(e['batch16']['rtfx'])} | {decimals(e['batch1']['latency_ms_p50'], 0)} | {wer(e)} |"
              for e in rows)]


def speed(f: Facts) -> list[str]:
    out = ["## Speed", ""]
    e, b = f.bench_entry, f.bench
    if e is None:
        why = ("no bench JSON given (`--bench`, from `kdasr bench --system NAME=MODEL_DIR ... --out X.md`)" if b is None
               else f"the bench JSON has no entry for this model (systems: "
                    f"{', '.join(s['name'] for s in b['systems'])})")
        out.append(f"No latency benchmark: {why}.")
        rtfx = [r for r in f.records if r.get("rtfx")]
        if rtfx:
            out.append("Throughput of the eval runs (whole set, not a latency benchmark): " + "; ".join(
                f"{r['set']} RTFx {r['rtfx']:.1f} at {r.get('threads') or 'default'} thread(s)" for r in rtfx) + ".")
        return out + [""]
    b1, b16 = e["batch1"], e["batch16"]
    out += [f"One `kdasr bench --system` run ({b.get('run')}), system `{e['name']}`, decoding "
            f"{describe(e['decoding'])}, first {b['utterances']} utterances of `{b['manifest']}` "
            f"({b['seconds_audio']:.1f} s of audio), {b['threads']} onnxruntime thread(s), {b['repeats']} round(s).",
            "", "| batch | RTFx | latency p50 ms | latency p95 ms |", "|---:|---:|---:|---:|",
            *(f"| {n} | {decimals(m['rtfx'])} | {decimals(m['latency_ms_p50'], 0)} | "
              f"{decimals(m['latency_ms_p95'], 0)} |"
              if m["latency_ms_p50"] is not None else f"| {n} | n/a | n/a | n/a |" for n, m in ((1, b1), (16, b16))),
            *_bench_beside(b, e),
            "", f"Method: {b.get('method', '')}.", "", "Machine:", *b.get("machine_lines", []), ""]
    if decoding_key(e["decoding"]) != decoding_key(recommended(f.spec)):
        out += [f"**Note:** benched with {describe(e['decoding'])}, not the recommended decoding.", ""]
    return out
