# kdasr: thin wrappers over the CLI, in stages like a Kaldi run.sh.
#   make demo        a light runtime-only venv (.venv-demo: pip install ., no torch, no apt packages), then
#                    transcribe the held-out samples with the shipped model (by name) and print the WER
#   make setup       the full toolkit (.venv: train, serve, dev, data, reference extras; apt voices for corpora)
#   make test        the test suite (~10 min on 2 cores)
#   make test-fast   the fast lane: unit and small integration tests, no corpus build or training
#                    (pytest -m 'not slow'; what counts as slow: tests/conftest.py)
#   make train-demo  the whole path from nothing in ~25 min on 2 cores: corpus, tokenizer, train (config
#                    demo-fast: 80 ms frames, CTC 0.5, lr 3e-3, the fastest learner measured), export, WER
#   make recipe      the paper recipe (eval/recipe.sh): corpus v2, teachers, soft labels, four students, export,
#                    tuning on dev, decoding, bench, eval/reports/paper-table.md (many hours on 2 cores;
#                    every stage skips finished work: re-run to continue). Variables: kdasr/recipe/settings.py.
#                    With PROTOCOL=FILE [EXP=DIR]: the claim recipe on that protocol (make claim, below)
#   make claim       the claim recipe (issue 28), driven by a protocol file: make claim PROTOCOL=FILE EXP=DIR
#                    [STAGES="tk lambda"] [WAIT=1: start once another run on EXP ends] (kdasr recipe claim;
#                    default kdasr/configs/protocols/claim-v1.toml into exp/claim): protocol frozen first,
#                    every choice on dev, systems x seeds, claim tables in EXP/report; every stage skips
#                    finished work (re-run to continue). kdasr/recipe/claim.py
#   make continue-demo  more training for the shipped small model: starts from export/demo-en-small's weights
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
DEMO_VENV ?= .venv-demo
KDASR := $(VENV)/bin/kdasr
APT_PACKAGES := sword-text-web sword-comm-tdavid libsword-utils r-cran-janeaustenr espeak-ng flite festival \
	festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
DATA ?= data/demo
DEMO_EXP ?= exp/demo-25min
DEMO_MINUTES ?= 25
FULL_EXP ?= exp/demo
CONT_EXP ?= exp/cont
CONT_MINUTES ?= 130

.PHONY: setup setup-data setup-games setup-noise real-corpus corpus-v2 mix-corpus real-report pretrained-report corpus demo test test-fast train-demo recipe claim continue-demo bench lint clean

setup: $(VENV)/.installed setup-data

# torch first, pinned: 2.13.0 is the CPU build on disk; anything else pulls a multi-GB CUDA build
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[train,serve,dev,data,reference]'
	touch $@

# Debian TTS engines and public-domain texts for the synthetic corpus (DATA-SOURCES.md), and the freeware
# talkie games whose voice acting is the real-speech corpus: downloaded and unpacked under data/packages
# (never installed: the games' engine is not needed, only their data files)
GAME_PACKAGES := flight-of-the-amazon-queen beneath-a-steel-sky
setup-data: setup-games
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# recorded sound for the real-corpus mix: sound effects (noise) and unlabelled game voices (babble); not part
# of setup-data, which CI runs: hedgewars-data alone is a 145 MB download that only `make real-corpus` needs
NOISE_PACKAGES := sonic-pi-samples hedgewars-data
setup-noise:
	@$(MAKE) --no-print-directory setup-games GAME_PACKAGES="$(NOISE_PACKAGES)"

setup-games:
	@mkdir -p data/packages; for p in $(GAME_PACKAGES); do \
	  [ -d data/packages/$$p/usr ] && continue; \
	  ( cd data/packages && rm -f $${p}_*.deb && { apt-get download -qq $$p 2>/dev/null || \
	    { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && apt-get download -qq $$p; }; } \
	    && dpkg-deb -x $${p}_*.deb $$p.partial && mv $$p.partial $$p && rm -f $${p}_*.deb ) \
	  || { echo "error: could not download the Debian package $$p (needs Debian's package registry)" >&2; exit 1; }; \
	done

# the real-speech corpus from the games' voice acting (kdasr data import-game; ~1 min + the recogniser's pass
# for fotaq; bass: ~2 CPU-minutes, its RNC unpacking is pure Python)
real-corpus: setup setup-noise
	$(KDASR) data import-game fotaq data/packages/flight-of-the-amazon-queen data/real/fotaq
	$(KDASR) data import-game bass data/packages/beneath-a-steel-sky data/real/bass

# the runtime alone, installed as a user would (not editable: the model comes from the installed package)
$(DEMO_VENV)/.installed: pyproject.toml $(shell find kdasr -name '*.py')  # a copy: reinstall when the code changes
	$(PYTHON) -m venv $(DEMO_VENV)
	$(DEMO_VENV)/bin/pip install -q .
	touch $@

# the pretrained-encoder students' corpus: corpus v2 (~9 h of synthetic speech; hours of CPU, resumable)
# mixed with the real corpora (band-limited share, recorded noise and babble; ~2 min)
corpus-v2: setup
	$(KDASR) data synth data/v2 --voices-per-sentence 1
mix-corpus: real-corpus corpus-v2
	$(KDASR) data mix data/mix

# eval/reports/real-corpus.md's generated part (the runs it reads are in eval/real/report.sh's header)
real-report: setup
	bash eval/real/report.sh > eval/reports/real-corpus.generated.md

# eval/reports/pretrained-encoder.md: the generated part (runs: eval/pretrained/run.sh) and the hand notes
pretrained-report: setup
	{ bash eval/pretrained/report.sh && cat eval/pretrained/notes.md; } > eval/reports/pretrained-encoder.md.tmp
	mv eval/reports/pretrained-encoder.md.tmp eval/reports/pretrained-encoder.md

# demo-en (whisper tiny.en's encoder under kdasr's decoder) on synthetic clips and on real voice acting
# (eval/samples/real: speakers never heard in training); demo-en-small on the synthetic clips for comparison
demo: $(DEMO_VENV)/.installed
	$(DEMO_VENV)/bin/kdasr transcribe eval/samples/*.flac eval/samples/real/*.flac -m demo-en
	$(DEMO_VENV)/bin/kdasr eval --manifest eval/samples/manifest.jsonl -m demo-en
	$(DEMO_VENV)/bin/kdasr eval --manifest eval/samples/real/manifest.jsonl -m demo-en
	$(DEMO_VENV)/bin/kdasr eval --manifest eval/samples/real/manifest.jsonl -m demo-en-small

# -n auto: one pytest worker per core (pytest-xdist); --dist loadfile keeps a file's tests on one worker,
# so a module's fixture (test_recipe's pipeline) is built once; --no-loadscope-reorder: files go out in
# the order tests/conftest.py gives them (the longest first, LONG_FILES)
test: setup
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

test-fast: setup
	$(VENV)/bin/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder -m 'not slow'

train-demo: setup
	$(MAKE) corpus
	$(KDASR) train --train $(DATA)/train.jsonl --dev $(DATA)/dev.jsonl --config demo-fast \
		--tokenizer $(DATA)/tokenizer.model --feature-cache $(DATA)/feats --out $(DEMO_EXP) --minutes $(DEMO_MINUTES)
	@# a 25-minute model decodes best with its CTC head (eval/reports/learning-speed.md)
	$(KDASR) export $(DEMO_EXP)/last.pt --out $(DEMO_EXP)/model --check --method ctc
	$(KDASR) eval --model $(DEMO_EXP)/model --manifest $(DATA)/test.jsonl
	$(KDASR) eval --model $(DEMO_EXP)/model --manifest $(DATA)/test_heldout.jsonl

# the paper recipe, stages corpus -> ... -> table (eval/recipe.sh, which builds its own corpus v2 in data/v2);
# its variables come from the environment, e.g. `EXP=exp/paper2 make recipe` or `make recipe STAGES="tune decode"`
recipe: setup
	$(if $(PROTOCOL),$(MAKE) claim PROTOCOL=$(PROTOCOL) EXP=$(or $(EXP),exp/claim) STAGES="$(STAGES)",bash eval/recipe.sh $(STAGES))

# the claim recipe (issue 28): every stage from the protocol file; EXP names the run dir it is frozen into.
# The report of the default run dir (exp/claim) is copied into eval/reports/claim, the copy kept in git
# (KEEP=DIR for another folder, or another EXP's report)
CLAIM_KEEP = $(or $(KEEP),$(if $(filter exp/claim,$(or $(EXP),exp/claim)),eval/reports/claim))
claim: setup
	$(KDASR) recipe claim --protocol $(or $(PROTOCOL),kdasr/configs/protocols/claim-v1.toml) \
		--exp $(or $(EXP),exp/claim) $(if $(WAIT),--wait) $(if $(CLAIM_KEEP),--keep $(CLAIM_KEEP)) $(STAGES)

# more training for the shipped small model: start from export/demo-en-small's weights (recovered from its
# ONNX graphs) with a fresh optimiser, a short warmup and SpecAugment on; resumable like the others.
# export/demo-en-small is the previous one continued this way (eval/reports/demo-model.md).
continue-demo: setup
	$(MAKE) corpus
	$(KDASR) train --train $(DATA)/train.jsonl --dev $(DATA)/dev.jsonl --tokenizer $(DATA)/tokenizer.model \
		--feature-cache $(DATA)/feats --out $(CONT_EXP) --init-from export/demo-en-small \
		--lr 1.2e-3 --warmup-steps 200 --specaug-start-step 100 --minutes $(CONT_MINUTES)
	@# the last epoch alone beat averages on dev; beam 10 + CTC 0.2 was the best decoding there
	$(KDASR) export $$(ls $(CONT_EXP)/epoch-*.pt | sort -V | tail -1) --out $(CONT_EXP)/model --check --quantize int8 \
		--beam 10 --ctc-weight 0.2
	$(KDASR) eval --model $(CONT_EXP)/model --manifest $(DATA)/test.jsonl
	$(KDASR) eval --model $(CONT_EXP)/model --manifest $(DATA)/test_heldout.jsonl

# the demo corpus (~11 h train, 2 voices per sentence; deterministic, resumable) and its tokenizer
corpus: setup
	$(KDASR) data synth $(DATA) --voices-per-sentence 2
	[ -f $(DATA)/tokenizer.model ] || $(KDASR) tokenizer train $(DATA)/teacher.txt --out $(DATA)/tokenizer --vocab-size 256

# runtime report: export the recipe's last checkpoint with int8 variants (+ teachers when present), then
# torch eager vs ORT fp32/int8, batching, beam/CTC, fusion/rescoring, RSS -> eval/reports/runtime.md
# the checkpoint: the old single-student run's (exp/demo), else make continue-demo's, else the shipped model
# dir itself (export and bench read its weights back from the ONNX graphs)
BENCH_CKPT ?= $(firstword $(wildcard $(FULL_EXP)/last.pt $(CONT_EXP)/last.pt) export/demo-en-small)
BENCH_MODEL ?= exp/bench-model
BENCH_MANIFEST ?= data/v2/test_heldout.jsonl
TEACHERS ?= exp/teachers
bench: setup
	$(KDASR) export $(BENCH_CKPT) --out $(BENCH_MODEL) --check --quantize int8
	[ ! -f $(TEACHERS)/lm/lm.pt ] || [ ! -f $(TEACHERS)/bert/config.json ] || $(KDASR) export-lm --lm $(TEACHERS)/lm --bert $(TEACHERS)/bert --out $(BENCH_MODEL) --check
	@# one onnxruntime thread: RTFx is compared per thread, and a second core would only add noise
	$(KDASR) bench --model $(BENCH_MODEL) --manifest $(BENCH_MANIFEST) --checkpoint $(BENCH_CKPT) \
		--limit 100 --threads 1 --repeats 2 --out eval/reports/runtime.md

lint: setup
	$(VENV)/bin/ruff check kdasr tests

clean:
	rm -rf $(VENV) $(DEMO_VENV) .pytest_cache
