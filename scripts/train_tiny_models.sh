#!/usr/bin/env bash
# Train the tiny embedded models on synthetic clips rendered in memory, on a CPU, and store their save_pretrained
# folders (safetensors, config, video processor) in model_zoo/<name>/. Each run takes a few minutes on 2 CPU cores.
# The recipes (the exact `rep4d train` / `rep4d finetune` commands, and which folder each fills) are data:
# ZOO_MODELS in configuration/zoo_recipes.py; this script runs them in table order and publishes each folder. Each
# published folder is then scored on held-out clips against its trivial baseline (benchmarks/bench_zoo.py ->
# eval_metrics.json).
#   bash scripts/train_tiny_models.sh                 # the four backbones (4ds, distill, rvm, moog)
#   bash scripts/train_tiny_models.sh 4ds rvm         # some of them; 4ds-points (a point-tracking readout) on request
#   DRY_RUN=1 bash scripts/train_tiny_models.sh       # print the commands only
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
RUNS=${RUNS:-runs/tiny}
ZOO=model_zoo

# One line per recipe: training name, folder, command, processor_from, then the arguments after `rep4d`, separated by
# the ASCII unit separator (arguments may hold spaces: the readout's JSON overrides).
RECIPES=$("$PYTHON" -m rep4d.configuration.zoo_recipes --runs "$RUNS" --zoo "$ZOO" "$@")
mapfile -t LINES <<< "$RECIPES"

publish() {  # copy the final folder (without training_args.json: it names local paths), then score it held out
    local run=$1 folder=$2 command=$3 processor_from=$4
    rm -rf "${ZOO:?}/$folder"; mkdir -p "$ZOO/$folder"
    if [ "$command" = finetune ]; then  # a readout run folder: its backbone's video processor, finetune's report
        cp "$RUNS/$run/"{config.json,model.safetensors} "$ZOO/$folder/"
        cp "$ZOO/$processor_from/video_preprocessor_config.json" "$ZOO/$folder/"
        "$PYTHON" -c 'import json, sys; r = json.load(open(sys.argv[1])); json.dump({"finetune_eval": r["eval"], "num_train_clips": r["num_train_clips"]}, open(sys.argv[2], "w"), indent=2)' \
            "$RUNS/$run/metrics.json" "$ZOO/$folder/eval_metrics.json"
    else
        cp "$RUNS/$run/final/"{config.json,model.safetensors,video_preprocessor_config.json} "$ZOO/$folder/"
        cp "$RUNS/$run/metrics.csv" "$ZOO/$folder/training_metrics.csv"
    fi
    # Held-out synthetic clips (seeds never used in training) against the trivial baseline -> eval_metrics.json.
    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 "$PYTHON" benchmarks/bench_zoo.py --models "$folder" --seed 1000 \
        --write-zoo || echo "model_zoo/$folder does not beat its trivial baseline (see its eval_metrics.json)" >&2
}

for line in "${LINES[@]}"; do
    IFS=$'\x1f' read -r -a FIELDS <<< "$line"
    run=${FIELDS[0]} folder=${FIELDS[1]} command=${FIELDS[2]} processor_from=${FIELDS[3]}
    ARGS=("${FIELDS[@]:4}")
    if [ -n "${DRY_RUN:-}" ]; then
        echo "rep4d ${ARGS[*]}"
        continue
    fi
    mkdir -p "$RUNS"
    # A readout run prints its Trainer log: kept in $RUNS/<name>.log.
    if [ "$command" = finetune ]; then
        "$PYTHON" -m rep4d "${ARGS[@]}" > "$RUNS/$run.log"
    else
        "$PYTHON" -m rep4d "${ARGS[@]}"
    fi
    publish "$run" "$folder" "$command" "$processor_from"
done
[ -n "${DRY_RUN:-}" ] || du -sh "$ZOO"/*
