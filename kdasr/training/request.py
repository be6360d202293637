"""One training request: what `kdasr train` was asked, typed, built at the entry point and passed
to `run_training`. Each field is one `kdasr train` option and carries its help text and flag names
(kdasr/cli/train.py derives the command's options from these fields, and a test holds the two
equal), so an option is declared here once. A field with `sets` overrides that TrainConfig field
of the preset when given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import KdasrError
from ..teachers.kd_mode import KdMode
from .config import TrainConfig

CONFIG_HELP = (
    "Packaged config or a .toml path. demo: the shipped model's shape (4.4M parameters, Conformer + LSTM "
    "attention decoder), for a few to tens of hours of speech; demo-fast: demo with 80 ms frames, the "
    "fastest learner on a CPU; whisper-tiny-frozen: whisper tiny.en's pretrained encoder (frozen, cached) "
    "under kdasr's decoder, for little or real speech; paper / paper-v2: the paper's experiments; tiny: "
    "a 0.05M-parameter toy for tests, never for a real corpus."
)


def option(help: str, *flags: str, sets: str | None = None, **kw):
    """A field that is a `kdasr train` option: its help, its flags (default: --field-name) and the
    TrainConfig field it overrides, if any."""
    return field(metadata={"help": help, "flags": flags, "sets": sets}, **kw)


@dataclass(frozen=True)
class TrainRun:
    train_manifest: Path = option("Training manifest (JSONL).", "--train")
    dev_manifest: Path = option("Dev manifest (JSONL).", "--dev")
    tokenizer: Path = option("sentencepiece model (kdasr tokenizer train).")
    out: Path = option("Experiment folder: checkpoints and logs.", "--out", "-o")
    config: str = option(CONFIG_HELP, default="demo")
    minutes: float | None = option("Stop after this many minutes (checkpoint kept).", sets="max_minutes", default=None)
    max_steps: int | None = option("Stop after this many steps.", sets="max_steps", default=None)
    epochs: int | None = option("Number of epochs.", sets="epochs", default=None)
    threads: int | None = option("torch threads.", sets="threads", default=None)
    feature_cache: Path | None = option("Where precomputed features live (default OUT/feats).", default=None)
    resume: bool = option("Continue from OUT/last.pt when present.", default=True)
    snapshot: tuple[float, ...] = option(
        "Also keep OUT/snapshot-<M>min.pt after M training minutes (repeatable).", sets="snapshot_minutes", default=()
    )
    kd: KdMode = option(
        "Distillation: none, lm, bert (utterance), bert-context or count (the two-sided count model's labels, "
        "`kdasr teacher soft-labels --teacher count:TEXT`: a control for BERT's knowledge).",
        sets="kd", default=KdMode.NONE,
    )
    soft_labels: Path | None = option(
        "Soft-label folder from `kdasr teacher soft-labels` (needed with --kd).", default=None
    )
    kd_weight: float | None = option(
        "λ of the soft term (default 0.1; 0.3 for bert-context).", sets="kd_weight", default=None
    )
    checkpoint_minutes: float | None = option("Write OUT/last.pt this often.", sets="checkpoint_minutes", default=None)
    amp: str | None = option("'bf16' autocasts the forward pass; 'none' (default).", sets="amp", default=None)
    init_from: Path | None = option(
        "Start from these weights (a checkpoint .pt or an exported model dir such as export/demo-en) with a "
        "fresh optimiser and schedule; same tokenizer required.",
        default=None,
    )
    init_encoder_from: Path | None = option(
        "Start the encoder and CTC head from these weights (checkpoint or model dir) and the decoder of "
        "--config's kind from scratch, with a fresh optimiser; the encoder must be --config's. For comparing "
        "decoders on one encoder.",
        default=None,
    )
    branch_from: Path | None = option(
        "Continue another run's checkpoint (its epoch-N.pt or last.pt) in OUT: its weights, optimiser, schedule "
        "and batch position, elapsed time and RNGs, with this command's --kd/--soft-labels/--kd-weight (the KD "
        "students of one table branch from one baseline checkpoint). Same --config, --tokenizer, --train and "
        "schedule required. When OUT/last.pt exists the run resumes it; --minutes counts the source's training "
        "time too.",
        default=None,
    )
    ctc_weight: float | None = option("Weight of the auxiliary CTC loss (config default).", default=None)
    lr: float | None = option("Peak learning rate (config default).", sets="lr", default=None)
    warmup_steps: int | None = option("Learning-rate warmup steps (config default).", sets="warmup_steps", default=None)
    max_frames: int | None = option("Padded 10 ms frames per batch (config default).", sets="max_frames", default=None)
    specaug_start_step: int | None = option(
        "Step at which SpecAugment starts.", sets="specaug_start_step", default=None
    )
    seed: int | None = option(
        "Seed of the trainable weights' initialisation and of the data order (and dropout and SpecAugment "
        "masks); default: the config's (0). A resume or branch keeps the run's seed.",
        sets="seed", default=None,
    )
    label_smoothing: float | None = option(
        "ε of the hard target (1 − ε)·one-hot + ε·uniform, in [0, 1) (config default 0.1).",
        sets="label_smoothing", default=None,
    )
    kd_smoothing: float | None = option(
        "σ of the soft target (1 − σ)·teacher top-K + σ·uniform, in [0, 1) (config default 0.1).",
        sets="kd_smoothing", default=None,
    )
    strict: bool = option(
        "Refuse manifests with utterances that `kdasr data validate` reports (digits, unnormalised text, more "
        "text than the duration can hold) instead of leaving them out.",
        default=False,
    )

    def __post_init__(self) -> None:
        """Normalise (paths, the KD mode, the snapshot list) and refuse combinations that cannot run."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and f.type in ("Path", "Path | None"):
                object.__setattr__(self, f.name, Path(value))
        object.__setattr__(self, "kd", KdMode.parse(self.kd))
        object.__setattr__(self, "snapshot", tuple(self.snapshot or ()))
        starts = [f"--{n.replace('_', '-')}" for n in ("init_from", "branch_from", "init_encoder_from")
                  if getattr(self, n) is not None]
        if len(starts) > 1:
            raise KdasrError(f"{' and '.join(starts)} exclude each other (one start: weights, a branch or an encoder)")
        for name in ("label_smoothing", "kd_smoothing"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:  # also NaN
                raise KdasrError(f"--{name.replace('_', '-')} {value}: must be at least 0 and below 1")
        if self.seed is not None and self.seed < 0:
            raise KdasrError(f"--seed {self.seed}: must be a whole number, 0 or more")
        if self.kd is not KdMode.NONE and self.soft_labels is None:
            raise KdasrError(f"--kd {self.kd} needs --soft-labels DIR (made by `kdasr teacher soft-labels`)")

    def train_config(self, preset: TrainConfig) -> TrainConfig:
        """The preset's training settings with this request's: every option given (not None, not
        empty) replaces its TrainConfig field; the KD weight defaults per mode."""
        given = {
            f.metadata["sets"]: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("sets") and getattr(self, f.name) not in (None, ())
        }
        given.setdefault("kd_weight", self.kd.default_weight)
        return dataclasses.replace(preset, **given)
