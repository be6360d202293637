#!/usr/bin/env bash
# Issue 27's studies on whisper tiny.en's frozen, cached encoder (kdasr/configs/whisper-tiny-frozen*.toml),
# on the mix (make mix-corpus: corpus v2 + FOTAQ + BASS), one torch thread per job. Every stage is
# resumable: trainers resume from last.pt, finished records are skipped. Hours of CPU; run it in the
# background (nohup bash eval/pretrained/run.sh STAGE... > exp/p27/run.log 2>&1 &), two jobs side by side.
#
#   units     the 256-unit (export/demo-en's) and 1,000-unit (data/mix/tok1000.model) LSTM students,
#             45 min each (EQ_MIN); eq-45.pt kept
#   decoder   the Transformer-decoder student on 1,000 units, 45 min
#   score     each eq-45.pt (and tf-1000's epoch-3.pt = the LSTM's step count) exported and scored greedy
#             on the first 200 utterances of the mix's dev and dev_real; records in $E/units
#   tok       data/mix/tok1000.model: the 1,000 units, copied from export/demo-en (the shipped student's
#             tokenizer.model is the file its runs trained on; it was built once and is kept only there)
#   bert      the BERT teacher on 1,000 units (data/mix/teacher.txt, 150 min)
#   lm        the left-to-right Transformer LM teacher on 1,000 units (demo size, 75 min): the claim's LM-KD
#             teacher and the fusion / rescoring LM
#   quality   the BERT teacher per unit and per word beside the count baselines (kdasr teacher quality);
#             the report is written to $E/teacher-quality-bert-1000.md and .json (keep copies both into the records)
#   refs      whisper base (faster-whisper, 1 thread) on the synthetic test sets whisper tiny.en has rows for
#             (test, test_heldout, test_noisy; test_neural_heldout is kept already): $E/refs/whisper-base-SET.json,
#             copied by keep to eval/reports/paper-reference/whisper-base (about 40 min each); and whisper tiny.en
#             on the rebuilt test_noisy ($E/refs/whisper-tiny.en-test_noisy.json, kept in eval/pretrained/records:
#             the paper recipe's kept record is the first build's audio, whose noise sox drew from the clock)
#   soft      its utterance-mode soft labels of the train set at T = 1, K = 32
#   ce        the chosen student (LSTM, 1,000 units) trained on to 180 min
#   derive    the paper's soft labels (T = 3, K = 8) from the T = 1, K = 32 ones (kdasr teacher soft-derive)
#   kd        the BERT-KD student (utterance mode, the paper's T, K and lambda 0.1): the CE run's epoch-5.pt
#             (start of epoch 5, step 2,234, 89 min) branched and trained with KD on to the same 180 min
#   final     both 180-min students exported (fp32 + int8) to $E/final/{ce,kd}
#   tune      each decoded on the whole dev and dev_real for every point of DEC_GRID (kdasr tune); the
#             point with the fewest word errors over both sets is recorded as $E/final/NAME-options.json
#   test      SHIP (the student chosen on dev) on every test set with its dev-chosen decoding, fp32 and int8
#   ship      SHIP exported as export/demo-en with its dev-chosen decoding (fp32 recommended; int8 graphs beside),
#             and int8 scored on dev + dev_real at that decoding (the precision rule's input)
#   card      export/demo-en/MODEL_CARD.md from the kept records (run after keep), the recommended int8 rows, whisper tiny.en and base
#             rows beside (kdasr model-card --reference)
#   precision export/demo-en as shipped, fp32 and int8 (since session 7 its int8 is the int8 encoder, one row
#             per call, and the fp32 decoder in batches: kdasr/export/quantize.py) on the dev sets and every test set; then
#             precision_rule.py: the rule fixed before decoding (int8 if its pooled dev WER is within 0.5
#             points of fp32's) and whether the fp32 WERs equal the kept ship-* records (a rebuilt mix)
#   bench     the shipped model alone (first 64 of test) and beside demo-en-small and faster-whisper tiny.en
#             (first 48 of test and of test_real), 1 thread: run it on a quiet machine
#   grid      issue 27's encoder x training grid at equal minutes (EQ_MIN each, LSTM decoder, 1,000 units):
#             whisper tiny.en and base, each frozen, top 2 layers fine-tuned, and all fine-tuned
#             (kdasr/configs/whisper-{tiny,base}-{frozen,top2,all}.toml; tiny frozen is the units stage's
#             lstm-1000 configuration, trained again as grid/tiny-frozen: that run's checkpoint was lost
#             with its exp/ before the grid was scored). Frozen parts are cached first, once per encoder and depth (the cache's build
#             time is in the run's log, outside its minutes); the all-layers runs read whisper's log-mel
#             features and run the whole encoder at every step. GRID names the runs (default all five)
#   gridscore each grid run's eq-$EQ_MIN.pt scored as the score stage does, and on the first 200 of every test
#             set (after every choice; nothing is chosen from them); records in $E/units, with
#             NAME-info.json (eval/pretrained/grid_info.py: trainable parameters, steps, cache build time)
#   gridbench the grid's students side by side, greedy, first 32 of test, 1 thread (`kdasr bench
#             --system`; run it on a quiet machine)
#   keep      the records report.sh reads copied into eval/pretrained/records/final (kept in git)
# (This run's KD branch started from the CE run's epoch-5.pt, since rotated away: a rerun of `kd` resumes its
# own last.pt. Its last.pt predates the fix that carries the pretrained encoder's record into a branch, so
# export/demo-en was exported from a copy with the record added, exp/p27/kd-bert-1000/provenance/last.pt.)
set -euo pipefail
cd "$(dirname "$0")/../.."
K=${KDASR:-.venv/bin/python -m kdasr}
D=${D:-data}; E=${E:-exp/p27}; C=${C:-exp/cache/tiny-frozen}; U=$E/units
T256=export/demo-en/tokenizer.model T1000=$D/mix/tok1000.model
EQ_MIN=${EQ_MIN:-45} CE_MIN=${CE_MIN:-180} BERT_MIN=${BERT_MIN:-150} LM_MIN=${LM_MIN:-75}
F=$E/final SHIP=${SHIP:-}
GRID=${GRID:-tiny-frozen tiny-top2 tiny-all base-frozen base-top2 base-all}
grid_cache() {  # a grid run's feature cache: the frozen prefix's, per encoder and depth; log-mel for "all"
  case $1 in *-all) echo exp/cache/whisper-mel ;; tiny-frozen) echo $C ;; *) echo exp/cache/$1 ;; esac; }
DEC_GRID=${DEC_GRID:---grid beam=1,4 --grid ctc_weight=0,0.3}  # fixed before any student was decoded
TESTS="test test_real test_noisy test_heldout test_neural_heldout"
REF_SETS=${REF_SETS:-test test_heldout test_noisy}  # whisper base's rows still missing beside tiny.en's
export OMP_NUM_THREADS=1

train() {  # run config tokenizer minutes
  $K train --train $D/mix/train.jsonl --dev $D/mix/dev.jsonl --tokenizer "$3" --config "$2" --out "$E/$1" \
    --minutes "$4" --threads 1 --feature-cache $C >> "$E/$1.log" 2>&1
}
keep_eq() { [ -f "$E/$1/eq-$EQ_MIN.pt" ] || cp "$E/$1/last.pt" "$E/$1/eq-$EQ_MIN.pt"; }
score() {  # name checkpoint [sets]
  [ -f "$U/$1/model.json" ] || $K export "$2" --out "$U/$1" > "$U/$1-export.log" 2>&1
  for s in ${3:-dev dev_real}; do
    [ -f "$U/$1-$s-b1.json" ] || $K eval --model "$U/$1" --manifest $D/mix/$s.jsonl --limit 200 --threads 1 \
      --beam 1 --system "$1-b1" --json "$U/$1-$s-b1.json" > "$U/$1-$s-b1.log" 2>&1
  done
}

mkdir -p $U
for stage in "${@:-units decoder score bert ce}"; do
  for st in $stage; do
    echo "[pretrained $(date +%H:%M:%S)] $st"
    case $st in
      units)   for n in lstm-256:$T256 lstm-1000:$T1000; do
                 [ -f "$E/${n%%:*}/eq-$EQ_MIN.pt" ] || { train "${n%%:*}" whisper-tiny-frozen "${n#*:}" $EQ_MIN; keep_eq "${n%%:*}"; }
               done ;;
      decoder) [ -f "$E/tf-1000/eq-$EQ_MIN.pt" ] || { train tf-1000 whisper-tiny-frozen-tf $T1000 $EQ_MIN; keep_eq tf-1000; } ;;
      score)   score lstm-256-s1316 $E/lstm-256/eq-$EQ_MIN.pt; score lstm-1000-s1341 $E/lstm-1000/eq-$EQ_MIN.pt
               score tf-1000-s1607 $E/tf-1000/eq-$EQ_MIN.pt;   score tf-1000-s1341 $E/tf-1000/epoch-3.pt ;;
      tok)     [ -f $T1000 ] || { mkdir -p $D/mix; cp export/demo-en/tokenizer.model $T1000.$$.tmp && mv $T1000.$$.tmp $T1000; } ;;  # $$: lanes start together
      lm)      [ -f $E/teachers/lm-1000/lm.pt ] && continue  # finished (a rerun would re-save it and redo its dev pass)
               $K teacher lm $D/mix/teacher.txt --tokenizer $T1000 --out $E/teachers/lm-1000 --size demo \
                 --minutes $LM_MIN --threads 1 --dev $D/mix/dev.jsonl >> $E/lm-1000.log 2>&1 ;;
      bert)    [ -f $E/teachers/bert-1000/config.json ] && continue  # finished (written last)
               $K teacher bert $D/mix/teacher.txt --tokenizer $T1000 --out $E/teachers/bert-1000 --size demo \
                 --window 256 --minutes $BERT_MIN --threads 1 --dev $D/mix/dev.jsonl >> $E/bert-1000.log 2>&1 ;;
      quality) [ $E/teacher-quality-bert-1000.json -nt $E/teachers/bert-1000/config.json ] && continue  # done
               $K teacher quality --tokenizer $T1000 --dev $D/mix/dev.jsonl --teacher-text $D/mix/teacher.txt \
                 --bert $E/teachers/bert-1000 --sentences 200 --no-strict --threads 1 \
                 --report $E/teacher-quality-bert-1000.md ;;
      refs)    mkdir -p $E/refs
               for s in $REF_SETS; do
                 [ -f $E/refs/whisper-base-$s.json ] || $K eval-reference --model base --manifest $D/mix/$s.jsonl \
                   --threads 1 --json $E/refs/whisper-base-$s.json > $E/refs/whisper-base-$s.log 2>&1
               done
               [ -f $E/refs/whisper-tiny.en-test_noisy.json ] || $K eval-reference --model tiny.en \
                 --manifest $D/mix/test_noisy.jsonl --threads 1 --json $E/refs/whisper-tiny.en-test_noisy.json \
                 > $E/refs/whisper-tiny.en-test_noisy.log 2>&1 ;;
      soft)    $K teacher soft-labels $D/mix/train.jsonl --tokenizer $T1000 --teacher $E/teachers/bert-1000 \
                 --mode utterance --top-k 32 --temperature 1 --threads 1 --out $E/soft/bert-utt-t1-k32 >> $E/soft-bert-utt.log 2>&1 ;;
      grid)    for g in $GRID; do
                 [ -f "$E/grid/$g/eq-$EQ_MIN.pt" ] && continue
                 mkdir -p $E/grid
                 $K train --train $D/mix/train.jsonl --dev $D/mix/dev.jsonl --tokenizer $T1000 --config whisper-$g \
                   --out $E/grid/$g --minutes $EQ_MIN --threads 1 --feature-cache "$(grid_cache $g)" >> $E/grid/$g.log 2>&1
                 cp $E/grid/$g/last.pt $E/grid/$g/eq-$EQ_MIN.pt
               done ;;
      gridscore) for g in $GRID; do  # dev sets, then (every choice made) the test sets, first 200 each
                   ck=$E/grid/$g/eq-$EQ_MIN.pt name=grid-$g
                   [ -f "$ck" ] || continue
                   score $name $ck "dev dev_real $TESTS"
                   [ -f $U/$name-info.json ] || ${PY:-.venv/bin/python} eval/pretrained/grid_info.py $ck \
                     --cache "$(grid_cache $g)" --out $U/$name-info.json > /dev/null
                 done ;;
      gridbench) $K bench --manifest $D/mix/test.jsonl --limit 32 --threads 1 --repeats 2 \
                   $(for g in $GRID; do echo --system $g=$U/grid-$g; done) \
                   --out $U/grid-bench.md > $U/grid-bench.log 2>&1 ;;
      ce)      train lstm-1000 whisper-tiny-frozen $T1000 $CE_MIN ;;
      derive)  [ -f $E/soft/bert-utt-t3-k8/summary.json ] || $K teacher soft-derive $E/soft/bert-utt-t1-k32 \
                 --temperature 3 --top-k 8 --out $E/soft/bert-utt-t3-k8 ;;
      kd)      $K train --train $D/mix/train.jsonl --dev $D/mix/dev.jsonl --tokenizer $T1000 --config whisper-tiny-frozen \
                 --out $E/kd-bert-1000 --minutes $CE_MIN --threads 1 --feature-cache $C \
                 --branch-from $E/lstm-1000/epoch-5.pt --kd bert --soft-labels $E/soft/bert-utt-t3-k8 --kd-weight 0.1 \
                 >> $E/kd-bert-1000.log 2>&1 ;;
      final)   mkdir -p $F
               for n in ce:lstm-1000 kd:kd-bert-1000; do
                 [ -f "$F/${n%%:*}/model.json" ] || $K export "$E/${n#*:}/last.pt" --out "$F/${n%%:*}" --quantize int8 \
                   > "$F/${n%%:*}-export.log" 2>&1
               done ;;
      tune)    for m in ce kd; do for s in dev dev_real; do
                 $K tune --model $F/$m --manifest $D/mix/$s.jsonl $DEC_GRID --threads 1 --system "$m" \
                   --out $F/$m-$s-tuned.json --table $F/$m-$s-tune.md > $F/$m-$s-tune.log 2>&1
               done; ${PY:-.venv/bin/python} eval/pretrained/choose_decoding.py $F/$m-dev-tuned.points \
                 $F/$m-dev_real-tuned.points --out $F/$m-options.json > $F/$m-choose.md; done ;;
      test)    [ -n "$SHIP" ] || { echo "test: name the student chosen on dev (SHIP=ce|kd)" >&2; exit 2; }
               for s in $TESTS; do for p in fp32 int8; do
                 [ -f $F/ship-$s-$p.json ] || $K eval --model $F/$SHIP --manifest $D/mix/$s.jsonl --threads 1 \
                   --options $F/$SHIP-options.json --precision $p --system "demo-en-$p" --json $F/ship-$s-$p.json \
                   > $F/ship-$s-$p.log 2>&1
               done; done ;;
      ship)    [ -n "$SHIP" ] || { echo "ship: name the student chosen on dev (SHIP=ce|kd)" >&2; exit 2; }
               src=$E/$([ $SHIP = kd ] && echo kd-bert-1000 || echo lstm-1000)
               [ -f $src/provenance/last.pt ] && src=$src/provenance
               $K export $src/last.pt --out export/demo-en --quantize int8 --options $F/$SHIP-options.json --check \
                 > $F/ship-export.log 2>&1
               for s in dev dev_real; do
                 $K eval --model $F/$SHIP --manifest $D/mix/$s.jsonl --threads 1 --options $F/$SHIP-options.json \
                   --precision int8 --system $SHIP-int8 --json $F/$SHIP-$s-int8.json > $F/$SHIP-$s-int8.log 2>&1
               done ;;
      precision) for s in dev dev_real $TESTS; do for p in fp32 int8; do
                 [ -f $F/shipped-$s-$p.json ] || $K eval --model export/demo-en --manifest $D/mix/$s.jsonl --threads 1 \
                   --precision $p --system "demo-en-$p" --json $F/shipped-$s-$p.json > $F/shipped-$s-$p.log 2>&1
               done; done
               ${PY:-.venv/bin/python} eval/pretrained/precision_rule.py --records $F --kept eval/pretrained/records/final \
                 > $F/precision-rule.md ;;
      bench)   $K bench --model export/demo-en --manifest $D/mix/test.jsonl --limit 64 --threads 1 --repeats 2 \
                 --out $F/bench-demo-en.md > $F/bench-demo-en.log 2>&1
               for s in test test_real; do
                 $K bench --manifest $D/mix/$s.jsonl --limit 48 --threads 1 --repeats 1 --system demo-en=export/demo-en \
                   --system demo-en-small=export/demo-en-small \
                   --system "whisper-tiny.en (faster-whisper int8, beam 5)=faster-whisper:tiny.en" \
                   --out $F/bench-vs-whisper-$s.md > $F/bench-vs-whisper-$s.log 2>&1
               done ;;
      card)    $K model-card export/demo-en --results eval/pretrained/records/final --system demo-en-int8 \
                 --bench eval/pretrained/records/final/bench-vs-whisper-test.json --corpus $D/mix/build_info.json \
                 $(for s in test test_heldout test_neural_heldout; do  # test_noisy: the rebuilt noise's run
                     echo --reference eval/reports/paper-reference/whisper-tiny.en/$s.json; done) \
                 --reference eval/pretrained/records/whisper-tiny.en-test_noisy.json \
                 --reference eval/real/records/whisper-tiny.en-test_real.json \
                 --reference eval/real/records/whisper-base-test_real.json \
                 --reference eval/reports/paper-reference/whisper-base ;;
      keep)    FR=eval/pretrained/records/final; mkdir -p $FR $FR/../logs  # what report.sh reads, kept in git
               cp $F/ce-choose.md $F/kd-choose.md $FR/ 2>/dev/null || true  # each part only where its run exists
               cp $F/ship-*.json $FR/ 2>/dev/null || true
               cp $F/bench-*.md $F/bench-*.json $FR/ 2>/dev/null || true
               mkdir -p $FR/../precision; cp $F/shipped-*.json $F/precision-rule.md $FR/../precision/ 2>/dev/null || true
               for r in lstm-1000 kd-bert-1000; do [ -f $E/$r/dev_log.csv ] && cp $E/$r/dev_log.csv $FR/../logs/$r-dev_log.csv; done
               for g in $GRID; do for l in dev_log train_log; do
                 [ -f $E/grid/$g/$l.csv ] && cp $E/grid/$g/$l.csv $FR/../logs/grid-$g-$l.csv; done; done
               cp $U/grid-*.json $U/grid-bench.md eval/pretrained/records/ 2>/dev/null || true
               for x in md json; do  # kdasr teacher quality writes its JSON beside the report; report.sh reads both
                 cp $E/teacher-quality-bert-1000.$x eval/pretrained/records/ 2>/dev/null || true; done
               for s in $REF_SETS; do [ -f $E/refs/whisper-base-$s.json ] && \
                 cp $E/refs/whisper-base-$s.json eval/reports/paper-reference/whisper-base/$s.json; done
               cp $E/refs/whisper-tiny.en-test_noisy.json eval/pretrained/records/ 2>/dev/null || true
               [ -f $F/ce/model.json ] && [ -f $F/kd/model.json ] && for m in ce kd; do  # steps and minutes, from the exports
                 ${PY:-.venv/bin/python} -c "import json, sys; t = json.load(open(sys.argv[1]))['training']
print(f\"{sys.argv[2]} {t['steps']:,} steps in {t['train_seconds'] / 60:.0f} min\")" $F/$m/model.json ${m^^}
               done | paste -sd';' | sed 's/;/; /' > $FR/steps.txt.tmp && mv $FR/steps.txt.tmp $FR/steps.txt || true ;;
      *)       echo "unknown stage $st (tok units decoder score bert lm quality soft ce derive kd final tune test ship precision bench card grid gridscore gridbench refs keep)" >&2; exit 2 ;;
    esac
  done
done
