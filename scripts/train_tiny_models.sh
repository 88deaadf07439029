#!/usr/bin/env bash
# Train the tiny embedded models (one per method) on synthetic clips rendered in memory, on a CPU, and store their
# save_pretrained folders (safetensors, config, video processor) in model_zoo/<name>/. Each run takes a few minutes
# on 2 CPU cores. The distilled student learns from the tiny 4DS model trained first. MooG logs every 2 steps: its
# short run drops from ~0.3 within the first 10 steps, which a 10-step log would not show. 4ds-points is a
# point-tracking readout (`rep4d finetune`) on the frozen tiny 4DS model, for the demo (train 4ds first).
#   bash scripts/train_tiny_models.sh            # all four backbones (4ds-points on request)
#   bash scripts/train_tiny_models.sh 4ds rvm    # some of them
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs/tiny}
ZOO=model_zoo
COMMON=(--data synthetic --synthetic-clips 64 --model-preset tiny --seed 0 --log-steps 10 --report-to none --quiet)
METHODS=("$@")
[ ${#METHODS[@]} -eq 0 ] && METHODS=(4ds distill rvm moog)

publish() {  # copy the final folder without training_args.json (it names local paths)
    rm -rf "$ZOO/$2"; mkdir -p "$ZOO/$2"
    cp "$RUNS/$1/final/"{config.json,model.safetensors,video_preprocessor_config.json} "$ZOO/$2/"
    cp "$RUNS/$1/metrics.csv" "$ZOO/$2/training_metrics.csv"
}

for method in "${METHODS[@]}"; do
    case "$method" in
    4ds)
        $PYTHON -m rep4d.training.train --method 4ds "${COMMON[@]}" --output "$RUNS/4ds" \
            --batch-size 8 --max-steps 300 --learning-rate 2e-3 --warmup-steps 20
        publish 4ds 4ds-tiny ;;
    distill)
        $PYTHON -m rep4d.training.train --method distill "${COMMON[@]}" --output "$RUNS/distill" \
            --teacher "$ZOO/4ds-tiny" --config hidden_size=48 --config num_attention_heads=3 \
            --config intermediate_size=192 --batch-size 8 --max-steps 150 --learning-rate 2e-3 --warmup-steps 15
        publish distill 4ds-tiny-dist ;;
    rvm)
        $PYTHON -m rep4d.training.train --method rvm "${COMMON[@]}" --output "$RUNS/rvm" \
            --batch-size 8 --max-steps 100 --learning-rate 2e-3 --warmup-steps 10
        publish rvm rvm-tiny ;;
    4ds-points)
        # Readout options as in benchmarks/bench_readouts.py: learned feature position embedding, 6 Fourier bands,
        # certainty target within 3/8 of an 8 px token (24 px of the 256 raster) at 32x32.
        .venv/bin/rep4d finetune --task points --backbone "$ZOO/4ds-tiny" --output "$RUNS/4ds-points" \
            --data synthetic:200,num_points=32,seed=0 --num-frames 8 --image-size 32 32 \
            --readout-width 64 --readout-heads 4 --learning-rate 3e-3 --max-steps 400 --batch-size 16 \
            --readout-overrides '{"backbone_feature_layer": 1, "feature_position_embedding": true, "num_fourier_bands": 6, "point_certainty_threshold": 24.0}' \
            --seed 0 --report-to none --quiet > "$RUNS/4ds-points.log"
        rm -rf "$ZOO/4ds-points"; mkdir -p "$ZOO/4ds-points"
        cp "$RUNS/4ds-points/"{config.json,model.safetensors} "$ZOO/4ds-points/"
        cp "$ZOO/4ds-tiny/video_preprocessor_config.json" "$ZOO/4ds-points/"
        $PYTHON -c 'import json, sys; r = json.load(open(sys.argv[1])); json.dump({"eval": r["eval"], "num_train_clips": r["num_train_clips"], "num_eval_clips": r["num_eval_clips"], "beats_baseline": r["beats_baseline"]}, open(sys.argv[2], "w"), indent=2)' \
            "$RUNS/4ds-points/metrics.json" "$ZOO/4ds-points/eval_metrics.json" ;;
    moog)
        $PYTHON -m rep4d.training.train --method moog "${COMMON[@]}" --output "$RUNS/moog" \
            --batch-size 4 --max-steps 50 --learning-rate 2e-3 --warmup-steps 5 --log-steps 2
        publish moog moog-tiny ;;
    *) echo "unknown method $method (4ds, distill, rvm, moog, 4ds-points)" >&2; exit 2 ;;
    esac
done
du -sh "$ZOO"/*
