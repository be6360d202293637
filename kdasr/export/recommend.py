"""`kdasr export --out DIR` without checkpoints: change what an exported model dir recommends
(model.json "decoding" and "precision") in place. Torch- and onnx-free: no graph is read or written."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..io_utils import atomic_write_text
from ..spec.decode_options import given_fields
from ..spec.graph_spec import read_spec_json
from ..spec.modelspec import ModelSpec


def update_recommendation(model_dir: Path, decoding: Mapping | None = None,
                          precision: Mapping[str, str] | None = None) -> ModelSpec:
    """Change what an exported model dir recommends, in place, without exporting again: model.json's
    "decoding" (the fields given over the recorded ones) and "precision" (the devices given over the
    recorded ones; fp32 removes a device's entry). Everything else in model.json stays as written,
    format version included, and no graph is touched (their metadata_props keep the export's copy).
    The result is parsed before it is written (atomically): a precision whose variant the dir lacks
    is one ModelError line naming the file, and nothing changes."""
    path = Path(model_dir) / "model.json"
    raw = read_spec_json(path, "model")
    for key, given in (("decoding", decoding), ("precision", precision)):
        if given:
            recorded = raw.get(key, {})
            raw[key] = {**(recorded if isinstance(recorded, Mapping) else {}), **given}
    spec = ModelSpec.from_dict(raw, str(path))
    raw["decoding"], raw["precision"] = given_fields(spec.decoding), dict(spec.precision)
    atomic_write_text(path, json.dumps(raw, indent=2) + "\n")
    return spec
