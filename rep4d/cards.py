"""Model cards: the text of every card, built from the one template ``model_cards/template.md``.

:func:`build_card` renders a ``huggingface_hub.ModelCard`` for a released checkpoint (its :class:`rep4d.publishing
.Release` entry: summary, usage, tags, the papers' results from :mod:`rep4d.papers`) or for an embedded demo model
(:func:`write_zoo_cards`: what ``rep4d.configuration.zoo_recipes.ZOO_MODELS`` says of it, its training log and the
exact command that trained it). The per-family texts live here: :data:`USAGE` (the code snippet of each kind of
release), :data:`LIMITATIONS` and :func:`input_format`. :func:`rep4d.publishing.write_release_cards` writes the cards
of the released checkpoints.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from rep4d.model_zoo import ZOO_DIR
from rep4d.papers import BENCHMARKS, PAPERS, UPSTREAM

if TYPE_CHECKING:
    from rep4d.publishing import ParameterCounts, Release

MODEL_CARDS_DIR = Path(importlib.import_module("rep4d.model_cards").__file__).parent
TEMPLATE_PATH = MODEL_CARDS_DIR / "template.md"
# The representations4d README: software under Apache 2.0, "all other materials" (the weights) under CC-BY 4.0.
WEIGHTS_LICENSE = "cc-by-4.0"
DEMO_NOTE = (
    "Trained on synthetic data for demonstration; convert the released checkpoints for real use "
    "(`rep4d convert` / `rep4d publish`)."
)

LIMITATIONS = {
    "fourds": [
        "The position embedding is learned for the released 16x224x224 input (token grid 8x14x14); other sizes are "
        "refused unless `interpolate_pos_encoding=True`, which the reference does not have (results may differ).",
        "No mean/std normalisation: pixels in [0, 1], as the reference.",
        "The backbone is a self-supervised representation: tasks need a readout trained on top "
        "(`rep4d.modeling.Readout*`).",
        "Numerical parity with the JAX reference is checked on golden fixtures (float32, CPU); bf16/GPU paths are "
        "not verified here.",
    ],
    "moog": [
        "The released attention tracking heads read clips of exactly 16 frames with queries on frame 0 "
        "(the point-tracking pipeline enforces both).",
        "Latent tokens are not tied to the pixel grid: there is no grid feature map to read directly.",
        "Trained on Ego4D (inferred from the checkpoint names); behaviour on other domains is not characterised here.",
        "MooG samples its initial state from noise: pass a `generator` for reproducible outputs.",
    ],
    "rvm": [
        "Processes frames one at a time with a recurrent state: cost is linear in the number of frames.",
        "Trained at 256x256 (16x16 token grid); other sizes resample the sinusoidal position table.",
        "The masked-reconstruction decoder is included for completeness; feature extraction uses `AutoModel`.",
        "No training code was released; fine-tuning recipes are not verified.",
    ],
    "omnivorous": [
        "An image model: apply it frame by frame for video.",
        "The official demo squashes every image to 224x224 (aspect ratio not kept, no crop); the 37x37 position "
        "table is resized with antialiased bicubic interpolation for any other token grid (as the official code).",
        "Auxiliary modalities must already be 8-bit RGB pictures (the demo's depth image is coloured with "
        "matplotlib's cividis map); the recipe for raw depth maps was not released.",
        "Not numerically `facebook/dinov2-base` (tanh GELU, antialiased position resize): compare against the "
        "official code, not against the original DINOv2.",
        "The released files are listed at 1.6 GB while the 198 arrays the official model reads are 346 MB in "
        "float32: any other array in the file is ignored (and reported) by the conversion.",
    ],
}

USAGE = {
    "fourds_backbone": '''import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor

repo = "{repo_id}"
# With rep4d installed (`import rep4d`) its own classes are used; without it the repo's code runs.
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)

video = np.random.randint(0, 256, (32, 240, 320, 3), dtype=np.uint8)  # or a path: "clip.mp4"
inputs = processor(video, return_tensors="pt")  # (1, T, 3, H, W) float in [0, 1]
with torch.inference_mode():
    outputs = model(**inputs)
print(outputs.readout_features.shape)  # (1, T, tokens per frame, hidden size): what readouts use
''',
    "fourds_depth": '''import numpy as np
import torch
from transformers import AutoModelForDepthEstimation, AutoVideoProcessor, pipeline

repo = "{repo_id}"
model = AutoModelForDepthEstimation.from_pretrained(repo, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)

video = np.random.randint(0, 256, (32, 240, 320, 3), dtype=np.uint8)  # or a path: "clip.mp4"
with torch.inference_mode():
    depth = model(**processor(video, return_tensors="pt")).predicted_depth
print(depth.shape)  # (1, T, H, W)

# The same through the custom pipeline shipped with the repo (depth video out):
depth_pipe = pipeline("video-depth-estimation", model=repo, trust_remote_code=True)
print(depth_pipe(video)["depth"].shape)  # (T, H, W) uint8, near = bright
''',
    "moog_backbone": '''import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor

repo = "{repo_id}"
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)

video = np.random.randint(0, 256, (16, 240, 320, 3), dtype=np.uint8)  # or a path: "clip.mp4"
inputs = processor(video, return_tensors="pt")
with torch.inference_mode():
    outputs = model(**inputs, generator=torch.Generator().manual_seed(0))
print(outputs.features.shape)  # (1, T, latent tokens, token dim): off-the-grid latents per frame
''',
    "moog_points": '''import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor, pipeline

repo = "{repo_id}"
# AutoModel maps to MooGForPointTracking in this repo's remote code.
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)
tracker = pipeline("point-tracking", model=model, video_processor=processor)

video = np.random.randint(0, 256, (16, 240, 320, 3), dtype=np.uint8)  # or a path: "clip.mp4"
size = processor.crop_size["height"]
queries = np.array([[0, size / 2, size / 2], [0, size / 4, size / 3]])  # (t, y, x) pixels, t = 0
result = tracker(video, query_points=queries)
print(result["tracks"].shape, result["visible"].shape)  # (N, T, 2) (x, y) pixels, (N, T) bool
''',
    "moog_boxes": '''import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor

repo = "{repo_id}"
# AutoModel maps to MooGForBoxTracking in this repo's remote code.
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)

frames = model.config.readout_num_frames  # the released head reads clips of exactly this length
video = np.random.randint(0, 256, (frames, 240, 320, 3), dtype=np.uint8)
pixel_values = processor(video, num_frames=frames, return_tensors="pt")["pixel_values"]
boxes = torch.tensor([[[0.2, 0.2, 0.6, 0.5]]])  # (B, boxes, 4) as (ymin, xmin, ymax, xmax) in [0, 1] on frame 0
with torch.inference_mode():
    outputs = model(pixel_values, query_boxes=boxes, generator=torch.Generator().manual_seed(0))
print(outputs.boxes.shape)  # (1, boxes, T, 4)
''',
    "rvm": '''import numpy as np
import torch
from transformers import AutoModel, AutoVideoProcessor, pipeline

repo = "{repo_id}"
model = AutoModel.from_pretrained(repo, trust_remote_code=True).eval()  # the recurrent encoder
processor = AutoVideoProcessor.from_pretrained(repo, trust_remote_code=True)

video = np.random.randint(0, 256, (8, 240, 320, 3), dtype=np.uint8)  # or a path: "clip.mp4"
inputs = processor(video, return_tensors="pt")
with torch.inference_mode():
    outputs = model(**inputs)
print(outputs.last_hidden_state.shape)  # (1, T, 1 + patches, D): CLS first, then the patch grid

# Grid features through the pipeline shipped with the repo:
features = pipeline("video-feature-extraction", model=repo, trust_remote_code=True)(video)["features"]
print(features.shape)  # (T, h, w, D)
''',
    "omnivorous": '''import torch
from PIL import Image
from transformers import AutoImageProcessor, AutoModel

repo = "{repo_id}"
# transformers' own Dinov2WithRegistersModel: no remote code, no rep4d needed.
model = AutoModel.from_pretrained(repo).eval()
# backend="pil" resizes with PIL like the official demo (224x224 bicubic, aspect ratio not kept).
processor = AutoImageProcessor.from_pretrained(repo, backend="pil")

image = Image.new("RGB", (320, 240), (200, 120, 40))  # or Image.open("photo.jpg").convert("RGB")
inputs = processor(images=image, return_tensors="pt")  # (1, 3, 224, 224), ImageNet mean/std
with torch.inference_mode():
    outputs = model(**inputs)
print(outputs.last_hidden_state.shape)  # (1, 1 + 16 * 16, hidden size): class token, then the 16x16 patch grid
patch_features = outputs.last_hidden_state[:, 1:]  # the dense features the official demo compares
''',
}


def _format_count(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def image_input_format(config, processor) -> str:
    """What an image model (Omnivorous DINOv2 on ``Dinov2WithRegistersModel``) takes, from its config and processor."""
    patch = config.patch_size
    table = config.image_size // patch
    lines = ["`pixel_values`: float32 (batch, 3, height, width), ImageNet mean/std normalised"]
    if processor is not None:
        size = processor.size
        lines.append(
            f"the image processor resizes to {size['height']}x{size['width']} (bicubic, aspect ratio not kept, no "
            "crop) and normalises, as the official demo; load it with `backend=\"pil\"` to resize with PIL like the "
            "demo (the default torchvision backend differs by one grey level on a few pixels)"
        )
    lines.append(
        f"patches {patch}x{patch}: a {size['height'] // patch}x{size['width'] // patch} token grid at the demo size; "
        f"the {table}x{table} position table is resized with antialiased bicubic interpolation for any other grid"
        if processor is not None else f"patches {patch}x{patch}; {table}x{table} position table"
    )
    lines.append(f"output `last_hidden_state` (batch, 1 + patches, {config.hidden_size}): the class token, then the "
                 "patch grid row by row (normalised by the final LayerNorm); `pooler_output` is the class token")
    return "\n".join(f"- {line}" for line in lines)


def input_format(config, processor) -> str:
    """What the model takes, from its config and video processor."""
    if config.model_type == "dinov2_with_registers":
        return image_input_format(config, processor)
    lines = ["`pixel_values`: float32 (batch, frames, 3, height, width) in [0, 1], no mean/std normalisation"]
    if processor is not None:
        crop = processor.crop_size
        frames = processor.num_frames
        lines.append(
            f"the video processor samples {frames if frames else 'all'} frames (uniformly; `frame_stride=k` for "
            f"consecutive frames), resizes the shorter side and centre-crops to {crop['height']}x{crop['width']}"
        )
        lines.append("accepted: file paths (decoded with PyAV), uint8/float arrays or tensors, lists of frames")
    if config.model_type == "fourds":
        t, h, w = config.token_grid
        lines.append(f"tubelets {config.tubelet_size}, token grid {t}x{h}x{w} for {config.num_frames} frames")
    return "\n".join(f"- {line}" for line in lines)


def build_card(
    release: Release | None,
    repo_id: str,
    num_parameters: int,
    config,
    processor,
    model_class: type,
    served_auto_classes: list[str] | None = None,
    demo_model: bool = False,
    title: str | None = None,
    summary: str | None = None,
    usage: str | None = None,
    method: str | None = None,
    training_command: str | None = None,
    training_summary: str | None = None,
    limitations: list[str] | None = None,
    usage_code: str | None = None,
    parameters: ParameterCounts | None = None,
):
    """A ``huggingface_hub.ModelCard`` from ``model_cards/template.md`` (never validated: that needs the Hub).

    ``parameters``: the counts of the conversion, when the model's differs from the released arrays' (constants the
    conversion adds, arrays it does not read); the card then states them."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    method = method or (release.method if release else config.model_type)
    paper = PAPERS.get(method)
    remote_code = release.remote_code if release else True
    if remote_code:
        tags = ["video", "self-supervised", "custom_code", "rep4d", method]
    else:
        tags = ["vision", "self-supervised", "rep4d", method]
    if release:
        tags += list(release.extra_tags)
    if paper and paper.arxiv:
        tags.append(f"arxiv:{paper.arxiv}")  # the Hub links the paper page from this tag
    if demo_model:
        tags.append("demo")
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=release.pipeline_tag if release else None,
        license=WEIGHTS_LICENSE if not demo_model else "apache-2.0",
        tags=tags,
        datasets=list(release.datasets) if release and release.datasets and not demo_model else None,
        base_model=release.base_model if release and not demo_model else None,
        model_name=title or (release.title if release else repo_id.split("/")[-1]),
        eval_results=[EvalResult(**result) for result in release.eval_results] if release and release.eval_results
        else None,
    )
    usage_key = usage or (release.usage if release else None)
    card = ModelCard.from_template(
        card_data,
        template_path=str(TEMPLATE_PATH),
        title=title or (release.title if release else repo_id.split("/")[-1]),
        repo_id=repo_id,
        summary=summary or (release.summary if release else f"A {model_class.__name__} converted with rep4d."),
        demo_note=DEMO_NOTE if demo_model else None,
        paper=paper,
        files=release.urls() if release and not demo_model else [],
        mirrors=release.mirror_urls() if release and not demo_model else [],
        remote_code=remote_code,
        publish_command=(
            f"rep4d publish {' '.join(release.files)} --repo-id {release.repo_id} --output {release.name}"
            if release else None
        ),
        model_class=model_class.__name__,
        num_parameters=f"{num_parameters:,}",
        num_parameters_short=_format_count(num_parameters),
        parameters_note=parameters.note() if parameters else "",
        auto_classes=served_auto_classes or [],
        pipeline_tasks=list(release.pipeline_tasks) if release else [],
        input_format=input_format(config, processor),
        usage=usage_code or (USAGE[usage_key].replace("{repo_id}", repo_id) if usage_key else None),
        benchmarks=BENCHMARKS.get(method),
        eval_results=list(release.eval_results) if release else [],
        results_note=release.results_note if release else "",
        protocol=release.protocol if release else "",
        limitations=LIMITATIONS.get(method, []) if limitations is None else limitations,
        upstream=UPSTREAM,
        training_command=training_command,
        training_summary=training_summary,
    )
    return card


def zoo_training_summary(folder: Path) -> str:
    """How the loss moved, from the folder's ``training_metrics.csv`` (the CSV log of ``rep4d train``)."""
    import csv

    path = folder / "training_metrics.csv"
    evaluation = folder / "eval_metrics.json"
    if not path.is_file() and evaluation.is_file():  # a readout trained with `rep4d finetune`
        report = json.loads(evaluation.read_text())
        metrics = report["eval"]
        pairs = [
            f"{key.removeprefix('eval_')} {value:.4g} (trivial baseline {metrics['eval_baseline_' + key[5:]]:.4g})"
            for key, value in metrics.items()
            if f"eval_baseline_{key[5:]}" in metrics
        ]
        verdict = "beats" if report.get("beats_baseline") else "does NOT beat"
        return (
            f"Trained with `rep4d finetune` on {report.get('num_train_clips', '?')} synthetic clips; on "
            f"{report.get('num_eval_clips', '?')} held-out clips: {'; '.join(pairs)}. It {verdict} the trivial "
            "baseline (`eval_metrics.json` in this folder). Command (from the repository root):"
        )
    if not path.is_file():
        return "No training log is stored with this model."
    rows = [row for row in csv.DictReader(path.open()) if row.get("loss")]
    if not rows:
        return "The training log in `training_metrics.csv` has no loss values."
    first, last = rows[0], rows[-1]
    minutes = float(last.get("elapsed_s") or 0) / 60
    return (
        f"Trained with `rep4d train` on synthetic clips rendered in memory (`rep4d.training.synthetic`), on a CPU: "
        f"{last['step']} steps in about {minutes:.0f} minutes; the training loss went from {float(first['loss']):.4g} "
        f"(step {first['step']}) to {float(last['loss']):.4g} (step {last['step']}). The full log is "
        "`training_metrics.csv` in this folder. Command (from the repository root):"
    )


ZOO_USAGE = '''import rep4d  # registers the rep4d classes with transformers
from rep4d.model_zoo import ZOO_DIR
from rep4d.modeling import {model_class}

model = {model_class}.from_pretrained(ZOO_DIR / "{name}").eval()
print(type(model).__name__, sum(p.numel() for p in model.parameters()))
# `rep4d demo` runs it on a synthetic clip and writes pictures and a summary.
'''


def zoo_limitations(config, num_parameters: int) -> list[str]:
    """What a demo model cannot do, from its config (the release limitations speak of the released sizes)."""
    source = getattr(config, "backbone_config", None) or config
    frames = getattr(source, "num_frames", None)
    size = getattr(source, "image_size", None) or getattr(config, "image_size", None)
    items = [
        f"Tiny ({_format_count(num_parameters)} parameters) and trained for minutes on a CPU: far from the papers' "
        "models in size, data and compute.",
        "Trained only on simple synthetic clips (textured shapes over a textured background): do not expect it to "
        "work on real videos.",
    ]
    if size:
        items.append(f"Trained on {frames or 'short'} frames of {size[0]}x{size[1]} pixels; other sizes are outside "
                     "what it has seen.")
    items.append("For real use, convert the released checkpoints (`rep4d convert`) or train at scale with "
                 "`rep4d train`.")
    return items


def write_zoo_cards(zoo_dir: str | os.PathLike = ZOO_DIR) -> list[Path]:
    """Honest cards for the embedded demo models (``model_zoo/<name>/``, Hub-format folders trained on synthetic
    clips), from the same template, saved as ``<folder>/README.md``. Every folder must be listed in
    ``rep4d.configuration.zoo_recipes.ZOO_MODELS`` (what it is and the command that trained it)."""
    from transformers import AutoConfig, AutoVideoProcessor

    from rep4d.configuration.zoo_recipes import ZOO_MODELS

    written = []
    for folder in sorted(Path(zoo_dir).glob("*/config.json")):
        folder = folder.parent
        if folder.name not in ZOO_MODELS:
            raise ValueError(f"model_zoo/{folder.name} is not described in rep4d.configuration.zoo_recipes.ZOO_MODELS "
                             f"(known: {', '.join(ZOO_MODELS)})")
        zoo_model = ZOO_MODELS[folder.name]
        config = AutoConfig.from_pretrained(folder)
        architecture = (config.architectures or [zoo_model.model_class])[0]
        processor = None
        if (folder / "video_preprocessor_config.json").exists():
            processor = AutoVideoProcessor.from_pretrained(folder)
        num_parameters = _count_safetensors(folder)
        method = config.model_type if config.model_type in PAPERS else getattr(
            getattr(config, "backbone_config", None), "model_type", None
        )
        card = build_card(
            None, f"rep4d/{folder.name}", num_parameters, config, processor, type(architecture, (), {}),
            demo_model=True, title=f"{folder.name} (demo model)", method=method,
            summary=f"A small `{architecture}` embedded in the rep4d package for `rep4d demo` "
            f"(demo step `{zoo_model.demo_step}`): {zoo_model.description}.",
            training_command=f"{zoo_model.training_command}\n# which runs:\n{zoo_model.command_line()}",
            training_summary=zoo_training_summary(folder), limitations=zoo_limitations(config, num_parameters),
            usage_code=ZOO_USAGE.format(model_class=zoo_model.model_class, name=folder.name),
        )
        card.save(folder / "README.md")
        written.append(folder / "README.md")
    return written


def _count_safetensors(folder: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total
