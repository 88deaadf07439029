"""``rep4d demo``: run the whole rep4d stack offline on a synthetic clip and write pictures, videos and a summary.

Steps: (1) a synthetic clip with ground truth (training/synthetic.py), (2) MooG next-frame prediction with token
attention maps, (3) 4DS masked reconstruction, (4) first-frame mask propagation with the distilled 4DS student's
features, (5) RVM masked reconstruction and mask propagation, (6) point tracking with an attention readout.

Models come from ``model_zoo/<name>/`` (Hub-format folders trained by the project on synthetic clips; which folder
serves which step is ``rep4d.model_zoo.DEMO_MODELS``). A step whose folder is missing uses a small RANDOMLY
INITIALISED model built from the training presets in code (``rep4d.training.train``), and the summary says so.
``--model DIR`` uses a converted released 4DS checkpoint for the 4DS steps.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rep4d.cli import Command
from rep4d.model_zoo import DEMO_MODELS, ZOO_DIR

EXAMPLES = """
examples:
  rep4d demo                                    # everything, results in demo_output/
  rep4d demo --output results --frames 8 --size 64
  rep4d demo --model 4ds-b-dist-e               # a converted released 4DS checkpoint (rep4d convert) for 4DS
  rep4d demo --zoo /nonexistent                 # no embedded models: small random ones (pipeline check only)
"""

ZOO_NOTE = "trained on synthetic clips for demonstration"
# Distilled student of the fallback: the width scripts/train_tiny_models.sh gives the 4ds-tiny-dist student.
DISTILLED_OVERRIDES = dict(hidden_size=48, num_attention_heads=3, intermediate_size=192)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", default="demo_output", help="folder for the results (default demo_output)")
    parser.add_argument("--model", help="a converted 4DS folder (rep4d convert) used for the 4DS steps")
    parser.add_argument("--zoo", default=str(ZOO_DIR),
                        help="folder of the embedded demo models (default: the installed rep4d.model_zoo)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the synthetic clip (even, default 8)")
    parser.add_argument("--size", type=int, default=64, help="height and width of the clip (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def random_demo_models() -> dict:
    """Builders of the fallback models: small configs from the CPU training presets, randomly initialised."""
    from rep4d.configuration import FourDSConfig, MooGConfig, RVMConfig
    from rep4d.modeling import (
        FourDSForPreTraining,
        FourDSModel,
        MooGForNextFramePrediction,
        RVMForMaskedReconstruction,
    )
    from rep4d.training.train import FOURDS_TRAIN_PRESETS, MOOG_TRAIN_PRESETS, RVM_TRAIN_PRESETS

    return {
        "moog": lambda: MooGForNextFramePrediction(MooGConfig(**MOOG_TRAIN_PRESETS["tiny"])),
        "4ds": lambda: FourDSForPreTraining(FourDSConfig(**FOURDS_TRAIN_PRESETS["tiny"])),
        "4ds_distilled": lambda: FourDSModel(FourDSConfig(**{**FOURDS_TRAIN_PRESETS["tiny"], **DISTILLED_OVERRIDES})),
        "rvm": lambda: RVMForMaskedReconstruction(RVMConfig(**RVM_TRAIN_PRESETS["tiny"])),
    }


def load_demo_model(step: str, zoo: Path, build_random=None):
    """(model in eval mode, description, from_zoo) for a demo step: the zoo folder if present, else ``build_random()``
    (None when there is no fallback builder: the caller makes one)."""
    import rep4d.modeling

    zoo_model = DEMO_MODELS[step]
    folder = zoo_model.folder(zoo)
    if folder is not None:
        model = getattr(rep4d.modeling, zoo_model.model_class).from_pretrained(folder).eval()
        return model, f"model_zoo/{zoo_model.name} ({ZOO_NOTE})", True
    if build_random is None:
        return None, None, False
    model = build_random().eval()
    return model, random_description(model, zoo_model.name), False


def random_description(model, zoo_name: str, origin: str = "config from the CPU training presets") -> str:
    parameters = sum(p.numel() for p in model.parameters())
    return (f"RANDOMLY INITIALISED small {type(model).__name__} ({parameters:,} parameters, {origin}; "
            f"no model_zoo/{zoo_name})")


def fit_clip(frames, num_frames: int | None, size) -> "torch.Tensor":  # noqa: F821
    """(1, T, 3, H, W) -> (1, num_frames, 3, *size): antialiased resize, then the first ``num_frames`` frames (the
    last frame repeated when the clip is shorter). ``num_frames=None`` keeps every frame."""
    import torch

    video = torch.nn.functional.interpolate(frames[0], size=tuple(size), mode="bilinear", antialias=True).clamp(0, 1)
    if num_frames is not None:
        if video.shape[0] < num_frames:
            video = torch.cat([video, video[-1:].expand(num_frames - video.shape[0], -1, -1, -1)])
        video = video[:num_frames]
    return video.unsqueeze(0)


def enlarge(image, min_height: int = 192):
    """Nearest-neighbour upscaling by an integer factor so the tiny models' 32x32 pictures are visible."""
    import numpy as np

    factor = max(1, -(-min_height // image.shape[0]))
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def fourds_feature_extractor(model):
    """(T, 3, H, W) frames -> (T, h, w, D) 4DS readout features (what label propagation compares)."""
    import torch

    config = model.config
    _, height, width = config.token_grid

    @torch.no_grad()
    def extract(video: torch.Tensor) -> torch.Tensor:
        clip = fit_clip(video.unsqueeze(0), config.num_frames, config.image_size)
        features = model(clip).readout_features[0][: video.shape[0]]  # (T, h*w, D), already per input frame
        return features.reshape(features.shape[0], height, width, -1)

    return extract


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    import rep4d  # noqa: F401
    from rep4d.configuration import ReadoutConfig
    from rep4d.label_propagation import propagate_mask, write_overlay
    from rep4d.modeling import FourDSForPreTraining, ReadoutForPointTracking, RVMModel
    from rep4d.moog_attention import decoder_attention_maps, write_attention_video
    from rep4d.training.synthetic import generate_clip
    from rep4d.visualization import distinct_colors, draw_points, write_png, write_video

    if args.frames < 4 or args.frames % 2:
        print("error: --frames must be an even number >= 4", flush=True)
        return 2
    if args.size < 16:
        print("error: --size must be >= 16", flush=True)
        return 2
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    zoo = Path(args.zoo)
    torch.manual_seed(args.seed)
    fallbacks = random_demo_models()
    steps = tqdm(total=6, desc="demo", unit="step", disable=args.quiet)
    summary = {"models": {}, "zoo": str(zoo), "random_models": [], "results": {}, "files": []}
    timings = {}

    def model_for(step):
        model, description, from_zoo = load_demo_model(step, zoo, fallbacks.get(step))
        if model is not None:
            summary["models"][step] = description
            if not from_zoo:
                summary["random_models"].append(step)
        return model

    def done(name, start):
        timings[name] = round(time.perf_counter() - start, 2)
        steps.set_postfix_str(name)
        steps.update(1)

    def save(name):
        summary["files"].append(name)
        return output / name

    # 1. clip ------------------------------------------------------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: synthetic clip")
    clip = generate_clip(args.seed, num_frames=args.frames, height=args.size, width=args.size, num_points=8,
                         query_mode="first")
    video = clip["video"]  # (T, H, W, 3) uint8
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)  # (1, T, 3, H, W)
    write_video(save("clip.mp4"), video, fps=4)
    write_png(save("clip_first_frame.png"), enlarge(video[0]))
    summary["clip"] = {"frames": args.frames, "size": [args.size, args.size], "source": "rep4d.training.synthetic"}
    done("clip", start)

    # 2. MooG next-frame prediction and token attention ------------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: MooG next-frame prediction")
    moog = model_for("moog")
    moog_frames = fit_clip(frames, None, moog.config.image_size)
    with torch.inference_mode():
        prediction = moog(moog_frames, generator=torch.Generator().manual_seed(args.seed))
        attention = decoder_attention_maps(moog, moog_frames, generator=torch.Generator().manual_seed(args.seed))
    predicted = prediction.predicted_pixel_values[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    truth = moog_frames[0].permute(0, 2, 3, 1).numpy()
    write_video(save("moog_next_frame.mp4"), np.concatenate([truth, predicted], axis=2), fps=4)
    write_png(save("moog_next_frame.png"), enlarge(np.concatenate([truth[-1], predicted[-1]], axis=1)))
    attention = attention[0].numpy() if hasattr(attention, "numpy") else np.asarray(attention[0])
    write_attention_video(save("moog_attention.mp4"), truth, attention, fps=4)
    summary["results"]["moog_next_frame_mse"] = float(((predicted[1:] - truth[1:]) ** 2).mean())
    # What a model that only copies the previous frame would score: the bar a trained predictor should approach.
    summary["results"]["moog_copy_last_frame_mse"] = float(((truth[:-1] - truth[1:]) ** 2).mean())
    done("moog", start)

    # 3. 4DS masked reconstruction ---------------------------------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: 4DS masked reconstruction")
    if args.model:
        fourds = FourDSForPreTraining.from_pretrained(args.model).eval()
        summary["models"]["4ds"] = f"{args.model} (converted checkpoint; the pixel decoder is not released: random)"
    else:
        fourds = model_for("4ds")
    clip4 = fit_clip(frames, fourds.config.num_frames, fourds.config.image_size)
    with torch.inference_mode():
        recon = fourds(clip4, generator=torch.Generator().manual_seed(args.seed))
    rec = recon.reconstruction[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    inp = clip4[0].permute(0, 2, 3, 1).numpy()
    write_video(save("fourds_reconstruction.mp4"), np.concatenate([inp, rec], axis=2), fps=4)
    write_png(save("fourds_reconstruction.png"), enlarge(np.concatenate([inp[0], rec[0]], axis=1)))
    summary["results"]["fourds_reconstruction_mse"] = float(((rec - inp) ** 2).mean())
    summary["results"]["fourds_masked_fraction"] = float(recon.mask.float().mean())
    done("4ds", start)

    first_mask = clip["segmentation"][0].astype(np.int64)
    truth_masks = clip["segmentation"]

    # 4. mask propagation with the distilled 4DS student -----------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: 4DS student label propagation")
    student = model_for("4ds_distilled")
    student_frames = min(args.frames, student.config.num_frames)
    with torch.inference_mode():
        student_propagation = propagate_mask(fourds_feature_extractor(student), video[:student_frames], first_mask)
    write_overlay(save("fourds_distilled_label_propagation.mp4"), video[:student_frames],
                  masks=student_propagation.masks, fps=4)
    summary["results"]["fourds_distilled_propagation_pixel_accuracy"] = float(
        (student_propagation.masks[1:] == truth_masks[1:student_frames]).mean())
    done("4ds_distilled", start)

    # 5. RVM reconstruction and label propagation ------------------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: RVM reconstruction + propagation")
    rvm = model_for("rvm")
    rvm_frames = fit_clip(frames, None, rvm.config.image_size)
    with torch.inference_mode():
        rvm_out = rvm(rvm_frames[:, :-1], rvm_frames[:, 1:], generator=torch.Generator().manual_seed(args.seed))
        backbone = RVMModel(rvm.config).eval()
        backbone.load_state_dict(rvm.rvm.state_dict())
        propagation = propagate_mask(backbone, video, first_mask, resolution=tuple(rvm.config.image_size))
    rvm_rec = rvm_out.reconstruction[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    rvm_truth = rvm_frames[0, 1:].permute(0, 2, 3, 1).numpy()
    write_video(save("rvm_reconstruction.mp4"), np.concatenate([rvm_truth, rvm_rec], axis=2), fps=4)
    write_png(save("rvm_reconstruction.png"), enlarge(np.concatenate([rvm_truth[-1], rvm_rec[-1]], axis=1)))
    write_overlay(save("rvm_label_propagation.mp4"), video, masks=propagation.masks, fps=4)
    summary["results"]["rvm_reconstruction_mse"] = float(((rvm_rec - rvm_truth) ** 2).mean())
    summary["results"]["rvm_propagation_pixel_accuracy"] = float((propagation.masks[1:] == truth_masks[1:]).mean())
    # The trivial baseline for both propagations: copy the first-frame mask to every frame.
    summary["results"]["copy_first_mask_pixel_accuracy"] = float((truth_masks[1:] == truth_masks[:1]).mean())
    done("rvm", start)

    # 6. point tracking with an attention readout ------------------------------------------------------------------
    start = time.perf_counter()
    steps.set_description("demo: point tracking")
    tracker = model_for("point_tracking")
    if tracker is None:
        # No trained readout: a random one on the 4DS backbone of step 3 (same weights), so only the head is random.
        config = ReadoutConfig(task="points", backbone_config=fourds.config.to_dict(), readout_num_params=64,
                               readout_num_heads=4)
        tracker = ReadoutForPointTracking(config).eval()
        tracker.backbone.model.load_state_dict(fourds.fourds.state_dict())
        summary["models"]["point_tracking"] = random_description(
            tracker.readout, DEMO_MODELS["point_tracking"].name, "explicit small ReadoutConfig")
        summary["models"]["point_tracking"] += f" on the 4DS backbone of step 3 ({summary['models']['4ds']})"
        summary["random_models"].append("point_tracking")
    height, width = tracker.image_size
    frames_t = tracker.num_frames
    track_clip = fit_clip(frames, frames_t, (height, width))
    scale = np.array([1.0, height / args.size, width / args.size], dtype=np.float32)
    queries = torch.from_numpy(clip["query_points"] * scale).unsqueeze(0)
    with torch.inference_mode():
        tracks = tracker(track_clip, query_points=queries)
    shown = min(frames_t, args.frames)  # frames past the clip are repeats of its last frame
    predicted_tracks = tracks.tracks[0].numpy()[:, :shown]  # (N, T, 2) x, y
    truth_tracks = clip["tracks"][:, :shown] * scale[[2, 1]]
    visible = ~clip["occluded"][:, :shown]
    error = np.linalg.norm(predicted_tracks - truth_tracks, axis=-1)
    summary["results"]["point_tracking_mean_error_px"] = float(error[visible].mean()) if visible.any() else None
    # The trivial baseline: every point stays at its query position.
    still = np.linalg.norm(truth_tracks - truth_tracks[:, :1], axis=-1)
    summary["results"]["point_tracking_static_baseline_error_px"] = (
        float(still[visible].mean()) if visible.any() else None)
    colours = distinct_colors(len(predicted_tracks))
    predicted_visible = ~tracks.occluded[0].numpy()[:, :shown]
    drawn = [draw_points(track_clip[0, t].permute(1, 2, 0).numpy(), predicted_tracks[:, t], colours,
                         predicted_visible[:, t]) for t in range(shown)]
    write_video(save("point_tracks.mp4"), np.stack(drawn), fps=4)
    write_png(save("point_tracks_last_frame.png"), enlarge(drawn[-1]))
    done("tracking", start)
    steps.close()

    random_models = summary["random_models"]
    summary["note"] = (
        ("Models: embedded demo models from model_zoo/ (" + ZOO_NOTE + ")" if not random_models else
         f"RANDOMLY INITIALISED models for {', '.join(random_models)} (no model_zoo/ folder for them; small configs "
         "defined in code): their outputs show the pipeline runs, not what the methods can do")
        + ". Even the embedded models are tiny and trained for minutes on synthetic data: convert the released "
        "checkpoints (rep4d convert) for real use."
    )
    summary["seconds"] = timings
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["# rep4d demo", "", summary["note"], "", "| step | model | seconds |", "|---|---|---|"]
    for title, key, timing in (("MooG next-frame + attention", "moog", "moog"),
                               ("4DS masked reconstruction", "4ds", "4ds"),
                               ("4DS distilled student: label propagation", "4ds_distilled", "4ds_distilled"),
                               ("RVM reconstruction + label propagation", "rvm", "rvm"),
                               ("point tracking", "point_tracking", "tracking")):
        lines.append(f"| {title} | {summary['models'][key]} | {timings.get(timing, '')} |")
    lines += ["", "## Results", ""] + [f"- {k}: {v}" for k, v in summary["results"].items()]
    lines += ["", "## Files", ""] + [f"- `{name}`" for name in summary["files"]]
    (output / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


COMMAND = Command(
    name="demo",
    help="run MooG, 4DS, RVM, label propagation and point tracking on a synthetic clip offline (embedded models)",
    add_arguments=add_arguments,
    run=run,
    order=90,
)
