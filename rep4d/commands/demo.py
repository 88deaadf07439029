"""``rep4d demo``: run the models on a sample clip offline and write pictures and a summary."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rep4d.cli import Command

EXAMPLES = """
examples:
  rep4d demo                                  # synthetic clip, small built-in model, results in demo_output/
  rep4d demo --model 4ds-b-dist-e --video my_clip.mp4 --output results
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXAMPLES
    parser.add_argument("--output", "-o", default="demo_output", help="folder for the results (default demo_output)")
    parser.add_argument("--model", help="a converted 4DS folder (rep4d convert); default: a small model made here")
    parser.add_argument("--video", help="a video file; default: a generated clip of moving shapes")
    parser.add_argument("--seed", type=int, default=0)


def sample_clip(frames: int, size: int, seed: int):
    """A clip of a textured square moving over a textured background (uint8, T x H x W x 3)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    background = rng.uniform(0.2, 0.6, (size, size * 2, 3)).astype(np.float32)
    texture = rng.uniform(0.5, 1.0, (size // 3, size // 3, 3)).astype(np.float32)
    clip = []
    for t in range(frames):
        frame = background[:, t : t + size].copy()
        y = x = 2 + int(t * (size - texture.shape[0] - 4) / max(frames - 1, 1))
        frame[y : y + texture.shape[0], x : x + texture.shape[1]] = texture
        clip.append(frame)
    return (np.stack(clip) * 255).astype(np.uint8)


def pca_colors(features):
    """(T, h, w, D) features -> (T, h, w, 3) colours from their first three principal components."""
    import numpy as np

    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    flat = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(flat, full_matrices=False)
    projected = flat @ vt[:3].T
    low, high = np.percentile(projected, 2, axis=0), np.percentile(projected, 98, axis=0)
    return np.clip((projected - low) / np.maximum(high - low, 1e-8), 0, 1).reshape(*features.shape[:-1], 3)


def run(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from rep4d.configuration import FourDSConfig
    from rep4d.modeling import FourDSModel
    from rep4d.processing import FourDSVideoProcessor
    from rep4d.visualization import write_png, write_video

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=3, desc="demo", unit="step")
    torch.manual_seed(args.seed)
    if args.model:
        model = FourDSModel.from_pretrained(args.model).eval()
        processor = FourDSVideoProcessor.from_pretrained(args.model)
        source = args.model
    else:
        config = FourDSConfig(hidden_size=96, num_hidden_layers=4, num_attention_heads=4, intermediate_size=192,
                              tubelet_size=[2, 8, 8], image_size=[64, 64], num_frames=8)
        model = FourDSModel(config).eval()
        processor = FourDSVideoProcessor.for_config(config)
        source = "randomly initialised small 4DS (pass --model for a converted checkpoint)"
    steps.update(1)
    height, width = processor.crop_size["height"], processor.crop_size["width"]
    clip = args.video or sample_clip(processor.num_frames * 2, max(height, width), args.seed)
    pixel_values = processor(clip, return_tensors="pt")["pixel_values"]
    start = time.perf_counter()
    with torch.inference_mode():
        features = model(pixel_values).readout_features[0]
    seconds = time.perf_counter() - start
    steps.update(1)
    t, h, w = model.embeddings.grid
    grid = features.reshape(features.shape[0], h, w, -1).float().numpy()
    colours = pca_colors(grid)
    upsampled = np.repeat(np.repeat(colours, height // h, axis=1), width // w, axis=2)
    frames = pixel_values[0].permute(0, 2, 3, 1).numpy()
    side_by_side = np.concatenate([frames, upsampled], axis=2)
    write_video(output / "features_pca.mp4", side_by_side, fps=4)
    write_png(output / "features_pca.png", np.concatenate(list(side_by_side[:: max(len(side_by_side) // 4, 1)]), 0))
    summary = {
        "model": source,
        "input": list(pixel_values.shape),
        "readout_features": list(features.shape),
        "forward_seconds": round(seconds, 3),
        "files": ["features_pca.mp4", "features_pca.png"],
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2))
    steps.update(1)
    steps.close()
    print(json.dumps(summary, indent=2))
    return 0


COMMAND = Command(
    name="demo",
    help="run rep4d on a sample clip offline and write pictures and a summary",
    add_arguments=add_arguments,
    run=run,
    order=90,
)
