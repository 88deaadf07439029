"""Every embedded zoo model (model_zoo/) against its trivial baseline on held-out synthetic clips.

The clips are rendered by ``rep4d.training.synthetic.generate_clip`` from the seeds ``(--seed, i)``, i < ``--clips``
(32 per model; 200 for 4ds-points, whose per-clip scores are noisy);
the zoo models were trained on the seeds ``(0, i)`` (every recipe of ``configuration/zoo_recipes.py`` has seed 0),
so with the default ``--seed 1000`` no evaluation clip was seen in training. Model and baseline are scored on the same
clips, the same frames and the same hidden pixels; every number is a mean over clips.

    model          metric (held out)                  trivial baseline
    moog-tiny      next-frame MSE, frames 1..T-1      copy the previous frame
    4ds-tiny       hidden-pixel MSE (model's own      every hidden pixel = mean colour of the clip's visible
                   95% tubelet mask)                  pixels (exactly the pixels the model sees); for scale,
                                                      an oracle painting each hidden tubelet with its own true
                                                      mean colour (the headroom of any flat-colour guess)
    rvm-tiny       hidden-pixel MSE on the target     every hidden target pixel = mean colour of what the model sees
                   frames (second half of the clip)   (all source frames + the visible target patches);
                                                      also reported: copy the last source frame (stronger)
    4ds-tiny-dist  DAVIS J&F of label propagation     the first-frame mask copied to every frame
    rvm-tiny       (rep4d.label_propagation,          (also reported: the empty mask)
                   64x64 clips, frames 1..T-2 scored)
    4ds-points     TAP-Vid average Jaccard (first-    every point stays at its query, always visible
                   frame queries, 256x256 raster)

Command (CPU, about a minute at the defaults):

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_zoo.py --output /tmp/bench_zoo.json

``--write-zoo`` also writes each measured row into ``model_zoo/<name>/eval_metrics.json`` (atomically), with the fields
``metric, value, baseline, baseline_value, lower_is_better, beats_baseline, clips_better, num_eval_clips, eval_seed,
command`` and the per-clip values
(rvm-tiny's file holds its two rows under ``rows``). Exits 1 when a model does not beat its baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before rep4d imports huggingface_hub

from rep4d.demo import rvm_hidden_pixels, to_video_tensor  # noqa: E402
from rep4d.demo import to_hwc as _hwc  # noqa: E402
from rep4d.training.propagation_metrics import davis_jf  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
PROPAGATION_SIZE = (64, 64)  # clip size for label propagation (4DS: 8x8 tokens of 8 px; RVM: 16x16 of 4 px)
DEFAULT_CLIPS = 32
CLIPS = {"4ds-points": 200}  # per-model defaults of --clips
COMMAND = "OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_zoo.py"


@dataclass
class Row:
    model: str
    metric: str
    value: float
    baseline: str
    baseline_value: float
    lower_is_better: bool
    num_eval_clips: int
    eval_seed: int
    other_baselines: dict = field(default_factory=dict)
    references: dict = field(default_factory=dict)  # not baselines: e.g. an oracle's score, the room there is to win
    clip_values: list = field(default_factory=list)  # per held-out clip, in clip order (for re-measurement)
    clip_baseline_values: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def beats_baseline(self) -> bool:
        """Strictly better than the baseline (a tie does not beat it)."""
        if self.lower_is_better:
            return self.value < self.baseline_value
        return self.value > self.baseline_value

    @property
    def clips_better(self) -> float:
        """Fraction of the clips on which the model strictly beats the baseline (how consistent a win is)."""
        pairs = list(zip(self.clip_values, self.clip_baseline_values))
        wins = sum((value < base) if self.lower_is_better else (value > base) for value, base in pairs)
        return wins / len(pairs) if pairs else float("nan")

    def to_dict(self) -> dict:
        return {**asdict(self), "beats_baseline": self.beats_baseline, "clips_better": self.clips_better}


def clips(seed: int, count: int, num_frames: int, size, num_points: int = 32) -> list[dict]:
    from rep4d.training.synthetic import generate_clip

    return [generate_clip((seed, index), num_frames=num_frames, height=size[0], width=size[1], num_points=num_points,
                          query_mode="first") for index in range(count)]


def bench_moog(model, seed: int, count: int) -> Row:
    config = model.config
    values, baselines = [], []
    for index, clip in enumerate(clips(seed, count, config.num_frames, config.image_size)):
        frames = to_video_tensor(clip["video"], config.image_size)
        with torch.inference_mode():
            predicted = _hwc(model(frames, generator=torch.Generator().manual_seed(index)).predicted_pixel_values[0])
        truth = _hwc(frames[0])
        values.append(float(((predicted[1:] - truth[1:]) ** 2).mean()))
        baselines.append(float(((truth[:-1] - truth[1:]) ** 2).mean()))
    return Row("moog-tiny", "next-frame MSE (frames 1..T-1)", float(np.mean(values)), "copy-previous-frame MSE",
               float(np.mean(baselines)), True, count, seed, clip_values=values, clip_baseline_values=baselines)


def bench_fourds_reconstruction(model, seed: int, count: int) -> Row:
    config = model.config
    grid = [size // tube for size, tube in zip((config.num_frames, *config.image_size), config.tubelet_size)]
    values, baselines, oracles = [], [], []
    for index, clip in enumerate(clips(seed, count, config.num_frames, config.image_size)):
        frames = to_video_tensor(clip["video"], config.image_size)
        with torch.inference_mode():
            outputs = model(frames, generator=torch.Generator().manual_seed(index))
        reconstruction, truth = _hwc(outputs.reconstruction[0]), _hwc(frames[0])
        hidden = np.asarray(outputs.mask[0].cpu().numpy() > 0.5).reshape(grid)
        for axis, size in enumerate(config.tubelet_size):
            hidden = np.repeat(hidden, size, axis=axis)
        visible_mean = truth[~hidden].mean(0)
        values.append(float(((reconstruction - truth)[hidden] ** 2).mean()))
        baselines.append(float(((visible_mean - truth)[hidden] ** 2).mean()))
        # Oracle: each hidden tubelet painted with its own true mean colour (what no model can beat by flat colours).
        tubelets = truth.reshape(grid[0], config.tubelet_size[0], grid[1], config.tubelet_size[1], grid[2],
                                 config.tubelet_size[2], 3).mean((1, 3, 5), keepdims=True)
        oracle = np.broadcast_to(tubelets, (grid[0], config.tubelet_size[0], grid[1], config.tubelet_size[1], grid[2],
                                            config.tubelet_size[2], 3)).reshape(truth.shape)
        oracles.append(float(((oracle - truth)[hidden] ** 2).mean()))
    return Row("4ds-tiny", f"hidden-pixel MSE ({config.mask_ratio:.0%} tubelet mask)", float(np.mean(values)),
               "visible-mean-colour MSE", float(np.mean(baselines)), True, count, seed,
               references={"oracle true-tubelet-mean-colour MSE": float(np.mean(oracles))}, clip_values=values,
               clip_baseline_values=baselines)


def bench_rvm_reconstruction(model, seed: int, count: int, num_frames: int = 8) -> Row:
    config = model.config
    values, baselines, copies = [], [], []
    for index, clip in enumerate(clips(seed, count, num_frames, config.image_size)):
        frames = to_video_tensor(clip["video"], config.image_size)
        split = frames.shape[1] // 2
        sources, targets = frames[:, :split], frames[:, split:]
        reconstruction, truth, hidden, last_source = rvm_hidden_pixels(model, sources, targets, seed=index)
        seen = np.concatenate([_hwc(sources[0]).reshape(-1, 3), truth[~hidden]])
        values.append(float(((reconstruction - truth) ** 2)[hidden].mean()))
        baselines.append(float(((seen.mean(0) - truth) ** 2)[hidden].mean()))
        copies.append(float(((last_source[None] - truth) ** 2)[hidden].mean()))
    return Row("rvm-tiny", "hidden-pixel MSE (target frames)", float(np.mean(values)), "visible-mean-colour MSE",
               float(np.mean(baselines)), True, count, seed,
               other_baselines={"copy-last-source-frame MSE": float(np.mean(copies))}, clip_values=values,
               clip_baseline_values=baselines)


def bench_propagation(name: str, model, seed: int, count: int, num_frames: int = 8) -> Row:
    from rep4d.label_propagation import propagate_mask

    config = model.config
    if getattr(config, "model_type", None) == "fourds":
        config.interpolate_pos_encoding = True  # 64x64 frames, trained at 32x32
    values, baselines, empties = [], [], []
    for clip in clips(seed, count, num_frames, PROPAGATION_SIZE):
        truth = clip["segmentation"].astype(np.int64)
        with torch.inference_mode():
            masks = propagate_mask(model, clip["video"], truth[0], resolution=PROPAGATION_SIZE).masks
        values.append(davis_jf(truth, masks))
        baselines.append(davis_jf(truth, np.repeat(truth[:1], len(truth), 0)))
        empties.append(davis_jf(truth, np.zeros_like(truth)))
    return Row(name, "DAVIS J&F (label propagation, 64x64)", float(np.mean(values)), "copy-first-mask J&F",
               float(np.mean(baselines)), False, count, seed, other_baselines={"empty-mask J&F": float(np.mean(empties))},
               clip_values=values, clip_baseline_values=baselines)


def average_jaccard(queries, truth_tracks, truth_occluded, tracks, occluded, size) -> float:
    """TAP-Vid average Jaccard of one clip (``first`` queries, on the 256x256 raster)."""
    from rep4d.training.metrics import compute_tapvid_metrics, rescale_tracks

    metrics = compute_tapvid_metrics(queries[None], truth_occluded[None], rescale_tracks(truth_tracks, size)[None],
                                     occluded[None], rescale_tracks(tracks, size)[None], query_mode="first")
    return float(metrics["average_jaccard"][0])


def bench_points(model, seed: int, count: int) -> Row:
    height, width = model.image_size
    num_frames = model.num_frames
    values, baselines = [], []
    for clip in clips(seed, count, num_frames, (height, width)):
        frames = to_video_tensor(clip["video"], (height, width))
        queries = clip["query_points"]
        with torch.inference_mode():
            outputs = model(frames, query_points=torch.from_numpy(np.ascontiguousarray(queries))[None])
        tracks = outputs.tracks[0].float().numpy()[:, :num_frames]
        occluded = outputs.occluded[0].numpy()[:, :num_frames].astype(bool)
        still = np.repeat(queries[:, None, [2, 1]], num_frames, axis=1)
        truth_tracks, truth_occluded = clip["tracks"], clip["occluded"].astype(bool)
        values.append(average_jaccard(queries, truth_tracks, truth_occluded, tracks, occluded, (height, width)))
        baselines.append(average_jaccard(queries, truth_tracks, truth_occluded, still, np.zeros_like(occluded),
                                         (height, width)))
    return Row("4ds-points", "TAP-Vid average Jaccard (first-frame queries)", float(np.mean(values)),
               "stay-at-query average Jaccard", float(np.mean(baselines)), False, count, seed, clip_values=values,
               clip_baseline_values=baselines)


def _load(zoo: Path, name: str):
    import rep4d.modeling
    from rep4d.configuration.zoo_recipes import ZOO_MODELS

    folder = zoo / name
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"no zoo model at {folder} (expected config.json; run scripts/train_tiny_models.sh)")
    model = getattr(rep4d.modeling, ZOO_MODELS[name].model_class).from_pretrained(folder)
    return model.eval()


BENCHES = {
    "moog-tiny": lambda model, seed, count: [bench_moog(model, seed, count)],
    "4ds-tiny": lambda model, seed, count: [bench_fourds_reconstruction(model, seed, count)],
    "4ds-tiny-dist": lambda model, seed, count: [bench_propagation("4ds-tiny-dist", model, seed, count)],
    "rvm-tiny": lambda model, seed, count: [bench_rvm_reconstruction(model, seed, count),
                                            bench_propagation("rvm-tiny", model, seed, count)],
    "4ds-points": lambda model, seed, count: [bench_points(model, seed, count)],
}


def _write_json_atomic(path: Path, payload) -> None:
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    with handle:
        json.dump(payload, handle, indent=2)
        handle.write("\n")
    os.replace(handle.name, path)


METRIC_KEYS = {  # short names of the metrics, for the "eval" summary (eval_<key> / eval_baseline_<key>)
    "next-frame MSE": "next_frame_mse", "hidden-pixel MSE": "hidden_pixel_mse", "DAVIS J&F": "davis_jf",
    "TAP-Vid average Jaccard": "average_jaccard",
}


def metric_key(metric: str) -> str:
    return next(key for prefix, key in METRIC_KEYS.items() if metric.startswith(prefix))


def eval_metrics_payload(rows: list[Row], command: str) -> dict:
    """The ``eval_metrics.json`` of one zoo folder: its row's fields (or its rows under ``rows``), the command, and
    ``eval``: ``{"eval_<metric>": value, "eval_baseline_<metric>": baseline}`` (what the model cards list)."""
    entries = [{key: value for key, value in row.to_dict().items() if key not in ("model", "seconds")} | {"command": command}
               for row in rows]
    summary = {}
    for row in rows:
        summary[f"eval_{metric_key(row.metric)}"] = row.value
        summary[f"eval_baseline_{metric_key(row.metric)}"] = row.baseline_value
    if len(entries) == 1:
        return entries[0] | {"eval": summary}
    return {"rows": entries, "beats_baseline": all(entry["beats_baseline"] for entry in entries), "command": command,
            "num_eval_clips": entries[0]["num_eval_clips"], "eval": summary}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zoo", default=str(REPO_ROOT / "model_zoo"), help="folder holding the zoo model folders")
    parser.add_argument("--models", nargs="+", default=list(BENCHES), choices=list(BENCHES))
    parser.add_argument("--clips", type=int,
                        help=f"held-out clips per model (default: {DEFAULT_CLIPS}; point tracking is cheap and noisy "
                        "per clip, so it gets more)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="dataset seed of the held-out clips (training used 0; default: 1000)")
    parser.add_argument("--output", "-o", help="write the table as JSON to this file")
    parser.add_argument("--write-zoo", action="store_true",
                        help="write each model's rows into <zoo>/<name>/eval_metrics.json")
    args = parser.parse_args(argv)
    if args.clips is not None and args.clips < 1:
        raise ValueError(f"--clips must be >= 1, got {args.clips}")
    from rep4d.configuration.zoo_recipes import ZOO_MODELS

    if any(ZOO_MODELS[name].seed == args.seed for name in args.models):
        raise ValueError(f"--seed {args.seed} is the training seed of the zoo models: pick a held-out seed")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    zoo = Path(args.zoo)
    table: list[Row] = []
    print(f"{'model':14s} {'metric':46s} {'value':>8s}  {'baseline':32s} {'value':>8s}  verdict")
    for name in args.models:
        model = _load(zoo, name)
        torch.manual_seed(0)
        start = time.perf_counter()
        count = args.clips or CLIPS.get(name, DEFAULT_CLIPS)
        rows = BENCHES[name](model, args.seed, count)
        for row in rows:
            row.seconds = (time.perf_counter() - start) / len(rows)
            verdict = "better" if row.beats_baseline else "worse"
            others = "".join(f"; {key} {value:.4g}" for key, value in {**row.other_baselines, **row.references}.items())
            print(f"{row.model:14s} {row.metric:46s} {row.value:8.4g}  {row.baseline:32s} {row.baseline_value:8.4g}"
                  f"  {verdict} (model better on {row.clips_better:.0%} of the clips){others}", flush=True)
        table.extend(rows)
        if args.write_zoo:  # merged into the folder's file: a readout's `rep4d finetune` report ("eval") stays
            command = f"{COMMAND} --models {name} --clips {count} --seed {args.seed}"
            path = zoo / name / "eval_metrics.json"
            report = json.loads(path.read_text()) if path.is_file() else {}
            _write_json_atomic(path, {**report, **eval_metrics_payload(rows, command)})
    if args.output:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(output, [row.to_dict() for row in table])
    failures = sorted({row.model for row in table if not row.beats_baseline})
    if failures:
        print(f"not beating their baseline: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
