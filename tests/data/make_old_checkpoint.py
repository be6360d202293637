"""How checkpoint-v0.1-739659c.pt was made, with the trainer as of commit 739659c (before the typed
TrainingCheckpoint): `PYTHONPATH=.:tests python tests/data/make_old_checkpoint.py /tmp/old/run`,
then copy /tmp/old/run/last.pt. Kept to say what the file is; the tests only read the file."""

import sys
from pathlib import Path

from train_worker import examples, tokenizer

from kdasr.models.config import ModelConfig
from kdasr.training.config import TrainConfig
from kdasr.training.trainer import train

out = Path(sys.argv[1])
tok = tokenizer(out.parent / "tok")
m = ModelConfig(vocab_size=tok.vocab_size, subsampling_channels=2, d_model=8, encoder_layers=1, attention_heads=2,
                ff_mult=1, conv_kernel=3, decoder_hidden=8, embed_dim=8, attention_dim=8, location_channels=2,
                location_kernel=3)
cfg = TrainConfig(max_steps=2, max_frames=600, checkpoint_minutes=0.0, threads=1, specaug_start_step=1,
                  dev_utterances=4, warmup_steps=10, log_every=1)
train(m, cfg, examples(tok, 16, 1), examples(tok, 4, 2), tok, out, summary={"preset": "test", "kd": "none"})
