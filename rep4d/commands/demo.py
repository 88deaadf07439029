"""``rep4d demo``: run the whole rep4d stack offline on a synthetic clip and write pictures, videos and a summary.

Steps: (1) a synthetic clip with ground truth (training/synthetic.py), (2) MooG next-frame prediction with token
attention maps, (3) 4DS masked reconstruction, (4) RVM masked reconstruction and first-frame mask propagation,
(5) point tracking with an attention readout. Models come from ``model_zoo/<name>/`` (Hub-format folders trained by
the project on synthetic clips) when present, else small randomly initialised models (said in the summary);
``--model DIR`` uses a converted released 4DS checkpoint for the 4DS steps.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from pathlib import Path

from rep4d.cli import Command

EXAMPLES = """
examples:
  rep4d demo                                    # everything, results in demo_output/
  rep4d demo --output results --frames 8 --size 64
  rep4d demo --model 4ds-b-dist-e               # a converted released 4DS checkpoint (rep4d convert) for 4DS
"""

ZOO = Path(importlib.import_module("rep4d.model_zoo").__file__).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURES = REPO_ROOT / "tests" / "fixtures"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", default="demo_output", help="folder for the results (default demo_output)")
    parser.add_argument("--model", help="a converted 4DS folder (rep4d convert) used for the 4DS steps")
    parser.add_argument("--zoo", default=str(ZOO), help="folder of the embedded demo models (default model_zoo/)")
    parser.add_argument("--frames", type=int, default=8, help="frames of the synthetic clip (even, default 8)")
    parser.add_argument("--size", type=int, default=64, help="height and width of the clip (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _zoo_model(zoo: Path, name: str, loader):
    folder = zoo / name
    if (folder / "config.json").is_file():
        return loader(folder), f"model_zoo/{name} (trained on synthetic clips for demonstration)"
    return None, None


def _random_from_case(model_class, config_from_case, case: Path):
    config = config_from_case(json.loads((case / "case.json").read_text()))
    return model_class(config).eval(), f"randomly initialised small {model_class.__name__} (no model_zoo/ folder)"


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    import rep4d  # noqa: F401
    from rep4d.configuration import FourDSConfig, ReadoutConfig
    from rep4d.label_propagation import propagate_mask, write_overlay
    from rep4d.modeling import (
        FourDSForPreTraining,
        MooGForNextFramePrediction,
        ReadoutForPointTracking,
        RVMForMaskedReconstruction,
        RVMModel,
    )
    from rep4d.modeling.convert_moog import config_from_case as moog_config
    from rep4d.modeling.convert_rvm import config_from_case as rvm_config
    from rep4d.moog_attention import decoder_attention_maps, write_attention_video
    from rep4d.training.synthetic import generate_clip
    from rep4d.visualization import distinct_colors, draw_points, write_png, write_video

    if args.frames < 4 or args.frames % 2:
        print("error: --frames must be an even number >= 4", flush=True)
        return 2
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    zoo = Path(args.zoo)
    torch.manual_seed(args.seed)
    steps = tqdm(total=5, desc="demo", unit="step", disable=args.quiet)
    summary = {"models": {}, "results": {}, "files": []}
    timings = {}

    def done(name, start):
        timings[name] = round(time.perf_counter() - start, 2)
        steps.set_postfix_str(name)
        steps.update(1)

    def save(name):
        summary["files"].append(name)
        return output / name

    # 1. clip ------------------------------------------------------------------------------------------------------
    start = time.perf_counter()
    clip = generate_clip(args.seed, num_frames=args.frames, height=args.size, width=args.size, num_points=8,
                         query_mode="first")
    video = clip["video"]  # (T, H, W, 3) uint8
    frames = torch.from_numpy(video).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)  # (1, T, 3, H, W)
    write_video(save("clip.mp4"), video, fps=4)
    summary["clip"] = {"frames": args.frames, "size": [args.size, args.size], "source": "training.synthetic"}
    done("clip", start)

    # 2. MooG next-frame prediction and token attention --------------------------------------------------------------
    start = time.perf_counter()
    moog, source = _zoo_model(zoo, "moog", lambda f: MooGForNextFramePrediction.from_pretrained(f).eval())
    if moog is None:
        moog, source = _random_from_case(MooGForNextFramePrediction, moog_config, FIXTURES / "moog" / "tiny_unroll")
    summary["models"]["moog"] = source
    moog_frames = torch.nn.functional.interpolate(frames[0], size=tuple(moog.config.image_size), mode="bilinear",
                                                  antialias=True).unsqueeze(0)
    with torch.inference_mode():
        prediction = moog(moog_frames, generator=torch.Generator().manual_seed(args.seed))
        attention = decoder_attention_maps(moog, moog_frames, generator=torch.Generator().manual_seed(args.seed))
    predicted = prediction.predicted_pixel_values[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    truth = moog_frames[0].permute(0, 2, 3, 1).numpy()
    write_video(save("moog_next_frame.mp4"), np.concatenate([truth, predicted], axis=2), fps=4)
    attention = attention[0].numpy() if hasattr(attention, "numpy") else np.asarray(attention[0])
    write_attention_video(save("moog_attention.mp4"), truth, attention, fps=4)
    summary["results"]["moog_next_frame_mse"] = float(((predicted[1:] - truth[1:]) ** 2).mean())
    done("moog", start)

    # 3. 4DS masked reconstruction ---------------------------------------------------------------------------------------
    start = time.perf_counter()
    if args.model:
        fourds = FourDSForPreTraining.from_pretrained(args.model).eval()
        summary["models"]["4ds"] = f"{args.model} (converted checkpoint; the pixel decoder is not released: random)"
    else:
        fourds, source = _zoo_model(zoo, "4ds", lambda f: FourDSForPreTraining.from_pretrained(f).eval())
        if fourds is None:
            config = FourDSConfig(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
                                  tubelet_size=[2, 8, 8], image_size=[args.size, args.size], num_frames=args.frames)
            fourds, source = FourDSForPreTraining(config).eval(), "randomly initialised small 4DS (no model_zoo/4ds)"
        summary["models"]["4ds"] = source
    size4 = tuple(fourds.config.image_size)
    clip4 = torch.nn.functional.interpolate(frames[0], size=size4, mode="bilinear", antialias=True).unsqueeze(0)
    clip4 = clip4[:, : fourds.config.num_frames] if clip4.shape[1] >= fourds.config.num_frames else clip4
    with torch.inference_mode():
        recon = fourds(clip4, generator=torch.Generator().manual_seed(args.seed))
    rec = recon.reconstruction[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    inp = clip4[0].permute(0, 2, 3, 1).numpy()
    write_video(save("fourds_reconstruction.mp4"), np.concatenate([inp, rec], axis=2), fps=4)
    write_png(save("fourds_reconstruction.png"), np.concatenate([inp[0], rec[0]], axis=1))
    summary["results"]["fourds_reconstruction_mse"] = float(((rec - inp) ** 2).mean())
    summary["results"]["fourds_masked_fraction"] = float(recon.mask.float().mean())
    done("4ds", start)

    # 4. RVM reconstruction and label propagation ---------------------------------------------------------------------
    start = time.perf_counter()
    rvm, source = _zoo_model(zoo, "rvm", lambda f: RVMForMaskedReconstruction.from_pretrained(f).eval())
    if rvm is None:
        rvm, source = _random_from_case(RVMForMaskedReconstruction, rvm_config, FIXTURES / "rvm" / "tiny_reconstruct")
    summary["models"]["rvm"] = source
    with torch.inference_mode():
        rvm_out = rvm(frames[:, :-1], frames[:, 1:], generator=torch.Generator().manual_seed(args.seed))
        backbone = RVMModel(rvm.config).eval()
        backbone.load_state_dict(rvm.rvm.state_dict())
        first_mask = clip["segmentation"][0].astype(np.int64)
        propagation = propagate_mask(backbone, video, first_mask)
    rvm_rec = rvm_out.reconstruction[0].clamp(0, 1).permute(0, 2, 3, 1).numpy()
    write_video(save("rvm_reconstruction.mp4"), np.concatenate([video[1:] / 255.0, rvm_rec], axis=2), fps=4)
    write_overlay(save("rvm_label_propagation.mp4"), video, masks=propagation.masks)
    truth_masks = clip["segmentation"]
    summary["results"]["rvm_propagation_pixel_accuracy"] = float((propagation.masks[1:] == truth_masks[1:]).mean())
    done("rvm", start)

    # 5. point tracking with an attention readout -----------------------------------------------------------------
    start = time.perf_counter()
    tracker, source = _zoo_model(zoo, "4ds-points", lambda f: ReadoutForPointTracking.from_pretrained(f).eval())
    if tracker is None:
        config = ReadoutConfig(task="points", backbone_config=fourds.config.to_dict(), readout_num_params=64,
                               readout_num_heads=4)
        tracker = ReadoutForPointTracking(config).eval()
        source = "randomly initialised readout on the 4DS backbone above (no model_zoo/4ds-points)"
        tracker.backbone.model.load_state_dict(fourds.fourds.state_dict())  # the same backbone as step 3
    summary["models"]["point_tracking"] = source
    height, width = tracker.image_size
    frames_t = tracker.num_frames
    track_clip = torch.nn.functional.interpolate(frames[0], size=(height, width), mode="bilinear",
                                                 antialias=True).unsqueeze(0)[:, :frames_t]
    scale = np.array([1.0, height / args.size, width / args.size], dtype=np.float32)
    queries = torch.from_numpy(clip["query_points"] * scale).unsqueeze(0)
    with torch.inference_mode():
        tracks = tracker(track_clip, query_points=queries)
    predicted_tracks = tracks.tracks[0].numpy()  # (N, T, 2) x, y
    truth_tracks = clip["tracks"][:, :frames_t] * scale[[2, 1]]
    visible = ~clip["occluded"][:, :frames_t]
    error = np.linalg.norm(predicted_tracks - truth_tracks, axis=-1)
    summary["results"]["point_tracking_mean_error_px"] = float(error[visible].mean()) if visible.any() else None
    colours = distinct_colors(len(predicted_tracks))
    predicted_visible = ~tracks.occluded[0].numpy()
    drawn = [draw_points(track_clip[0, t].permute(1, 2, 0).numpy(), predicted_tracks[:, t], colours,
                         predicted_visible[:, t]) for t in range(frames_t)]
    write_video(save("point_tracks.mp4"), np.stack(drawn), fps=4)
    done("tracking", start)
    steps.close()

    random_models = [name for name, text in summary["models"].items() if text.startswith("randomly")]
    summary["note"] = (
        "Models: " + ("embedded demo models from model_zoo/ (trained on synthetic data for demonstration)"
                      if not random_models else
                      f"RANDOMLY INITIALISED for {', '.join(random_models)} (no embedded model_zoo/ folder): "
                      "outputs show the pipeline, not what the methods can do")
        + ". Convert the released checkpoints (rep4d convert) for real use."
    )
    summary["seconds"] = timings
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    lines = ["# rep4d demo", "", summary["note"], "", "| step | model | seconds |", "|---|---|---|"]
    for step, key in (("MooG next-frame + attention", "moog"), ("4DS masked reconstruction", "4ds"),
                      ("RVM reconstruction + label propagation", "rvm"), ("point tracking", "point_tracking")):
        lines.append(f"| {step} | {summary['models'][key]} | {timings.get(key.replace('point_tracking', 'tracking'), '')} |")
    lines += ["", "## Results", ""] + [f"- {k}: {v}" for k, v in summary["results"].items()]
    lines += ["", "## Files", ""] + [f"- `{name}`" for name in summary["files"]]
    (output / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


COMMAND = Command(
    name="demo",
    help="run MooG, 4DS, RVM and point tracking on a synthetic clip offline; write videos and a summary",
    add_arguments=add_arguments,
    run=run,
    order=90,
)
