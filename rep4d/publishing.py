"""Hub publishing: model cards and Hub-ready folders for the released checkpoints (``rep4d publish``).

A published folder holds the converted weights (safetensors), ``config.json`` with ``auto_map`` for every Auto class
the repo serves and ``custom_pipelines`` for the rep4d pipelines it supports, the video processor config, the model
code copied flat (so ``trust_remote_code=True`` works without rep4d) and a ``README.md`` model card built with
``huggingface_hub.ModelCard`` from the one template in ``model_cards/template.md``.

``RELEASES`` describes the ten released checkpoints of ``representations4d``. Nothing here needs the network except
``push=True`` (``huggingface_hub.create_repo`` + ``upload_folder``).
"""

from __future__ import annotations

import importlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rep4d.conversion import (
    atomic_output_dir,
    checkpoint_shapes,
    identify_checkpoint,
    open_checkpoint,
    parse_size,
    plan_conversion,
    read_manifest,
    write_model_folder,
)
from rep4d.pipelines import DEPTH_TASK, FEATURE_TASK, POINT_TRACKING_TASK
from rep4d.remote_code import export_remote_code

# Shipped with the package (package data), so publishing works from a plain `pip install`.
PACKAGE_ROOT = Path(__file__).resolve().parent
MANIFESTS_DIR = PACKAGE_ROOT / "manifests"
MODEL_CARDS_DIR = Path(importlib.import_module("rep4d.model_cards").__file__).parent
TEMPLATE_PATH = MODEL_CARDS_DIR / "template.md"
CHECKPOINT_URL = "https://storage.googleapis.com/representations4d/checkpoints/{}"
UPSTREAM = "https://github.com/google-deepmind/representations4d"
# The representations4d README: software under Apache 2.0, "all other materials" (the weights) under CC-BY 4.0.
WEIGHTS_LICENSE = "cc-by-4.0"
DEMO_NOTE = (
    "Trained on synthetic data for demonstration; convert the released checkpoints for real use "
    "(`rep4d convert` / `rep4d publish`)."
)


@dataclass(frozen=True)
class Paper:
    title: str
    arxiv: str
    citation: str

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}"


PAPERS = {
    "fourds": Paper(
        "Scaling 4D Representations", "2412.15212",
        "@article{carreira2024scaling,\n  title={Scaling 4D Representations},\n  author={Carreira, Jo{\\~a}o and "
        "Gokay, Dilara and King, Michael and others},\n  journal={arXiv preprint arXiv:2412.15212},\n  year={2024}\n}",
    ),
    "moog": Paper(
        "Moving Off-the-Grid: Scene-Grounded Video Representations", "2411.05927",
        "@article{van2024moving,\n  title={Moving Off-the-Grid: Scene-Grounded Video Representations},\n  "
        "author={van Steenkiste, Sjoerd and Zoran, Daniel and Yang, Yi and others},\n  "
        "journal={Advances in Neural Information Processing Systems},\n  volume={37},\n  year={2024}\n}",
    ),
    "rvm": Paper(
        "Recurrent Video Masked Autoencoders", "2512.13684",
        "@article{zoran2025recurrent,\n  title={Recurrent Video Masked Autoencoders},\n  author={Zoran, Daniel and "
        "Parthasarathy, Nikhil and Yang, Yi and Hudson, Drew A and Carreira, Jo{\\~a}o and Zisserman, Andrew},\n  "
        "journal={arXiv preprint arXiv:2512.13684},\n  year={2025}\n}",
    ),
}

# Benchmarks the papers evaluate on, as relayed by the porting specs. The specs carry no result numbers,
# so no model-index values are published: a number that is not in the specs is never invented.
BENCHMARKS = {
    "fourds": "depth estimation (ScanNet readout released), point tracking, box tracking, camera pose and "
    "action classification with attention readouts on the frozen backbone (4DS paper, Sec. 3.2 of the spec)",
    "moog": "point tracking with TAP-Vid metrics (occlusion accuracy, <delta position accuracy, Average Jaccard) on "
    "256x256 frames, box tracking and depth readouts (MooG paper)",
    "rvm": "DAVIS-2017 semi-supervised video object segmentation (J&F), JHMDB pose propagation (PCK@0.1..0.5) and "
    "VIP human part propagation (mIoU) by label propagation on the frozen features (RVM paper)",
}

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
print(outputs.values.shape)  # (1, T, boxes, 4)
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
}


@dataclass(frozen=True)
class Release:
    """One released checkpoint of representations4d and how it is published."""

    name: str  # repo name under rep4d/
    title: str
    method: str  # fourds | moog | rvm
    files: tuple[str, ...]  # released .npz file(s), in the order `rep4d publish` takes them
    manifests: tuple[str, ...]  # repo-relative manifest JSONs of those files (shapes, parameter counts)
    summary: str
    usage: str  # key of USAGE
    pipeline_tag: str | None
    pipeline_tasks: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    base_model: str | None = None
    extra_tags: tuple[str, ...] = ()
    eval_results: tuple[dict, ...] = field(default=())  # EvalResult kwargs; only numbers relayed by the specs

    @property
    def repo_id(self) -> str:
        return f"rep4d/{self.name}"

    @property
    def paper(self) -> Paper:
        return PAPERS[self.method]

    def manifest_paths(self, root: Path = MANIFESTS_DIR) -> list[Path]:
        return [root / manifest for manifest in self.manifests]

    def num_parameters_from_manifests(self, root: Path = MANIFESTS_DIR) -> int:
        return sum(json.loads(path.read_text())["num_params"] for path in self.manifest_paths(root))

    def shapes(self, root: Path = MANIFESTS_DIR) -> dict[str, tuple[int, ...]]:
        shapes = {}
        for path in self.manifest_paths(root):
            shapes.update(read_manifest(path))
        return shapes


_4DS = "4ds/"
_MOOG = "moog/"
_RVM = "rvm/"
_MOOG_BACKBONE = "moog_ego4d_backbone_ckpt_164335139"


def _rvm(size: str, letter: str, stem: str) -> Release:
    return Release(
        name=f"rvm-{letter.lower()}", title=f"RVM-{letter}", method="rvm", files=(f"{stem}.npz",),
        manifests=(f"{_RVM}{stem}.json",),
        summary=f"Recurrent Video Masked Autoencoder, {size} encoder (ViT-{letter}/16 at 256x256), with its recurrent "
        "cross-attention core and masked-reconstruction decoder: a streaming per-frame video representation.",
        usage="rvm", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
        extra_tags=("masked-autoencoder", "recurrent", "label-propagation"),
    )


RELEASES: dict[str, Release] = {
    release.name: release
    for release in [
        Release(
            name="4ds-b-dist-e", title="4DS-B-dist-e", method="fourds", files=("scaling4d_dist_b.npz",),
            manifests=(f"{_4DS}scaling4d_dist_b.json",),
            summary="ViT-B video masked autoencoder on 2x16x16 tubelets, distilled from 4DS-e (judging by its name): "
            "a 4D (space + time) self-supervised video representation for depth, tracking and pose readouts.",
            usage="fourds_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            extra_tags=("masked-autoencoder", "vit"),
        ),
        Release(
            name="4ds-e", title="4DS-e", method="fourds", files=("scaling4d_e.npz",),
            manifests=(f"{_4DS}scaling4d_e.json",),
            summary="ViT-e (3.8B parameters) video masked autoencoder on 2x16x16 tubelets from the 4DS scaling study.",
            usage="fourds_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            extra_tags=("masked-autoencoder", "vit"),
        ),
        Release(
            name="4ds-b-dist-e-scannet-depth", title="4DS-B-dist-e ScanNet depth", method="fourds",
            files=("scaling4d_dist_b_depth.npz",), manifests=(f"{_4DS}scaling4d_dist_b_depth.json",),
            summary="4DS-B-dist-e backbone with the released attention-readout depth head trained on ScanNet "
            "(per-patch learned queries, 2x8x8 decoding patches): video in, a depth video out.",
            usage="fourds_depth", pipeline_tag="depth-estimation", pipeline_tasks=(DEPTH_TASK,),
            datasets=("ScanNet",), base_model="rep4d/4ds-b-dist-e", extra_tags=("depth-estimation", "video-depth"),
        ),
        Release(
            name="moog-backbone", title="MooG backbone", method="moog", files=(f"{_MOOG_BACKBONE}.npz",),
            manifests=(f"{_MOOG}{_MOOG_BACKBONE}.json",),
            summary="Moving Off-the-Grid: a recurrent video model whose latent tokens are not tied to the pixel grid "
            "(convolutional encoder, transformer corrector and predictor).",
            usage="moog_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            datasets=("Ego4D",), extra_tags=("off-the-grid", "recurrent"),
        ),
        Release(
            name="moog-point-tracking", title="MooG point tracking", method="moog",
            files=(f"{_MOOG_BACKBONE}.npz", "moog_ego4d_point_track_head_ckpt_164335139.npz"),
            manifests=(f"{_MOOG}{_MOOG_BACKBONE}.json", f"{_MOOG}moog_ego4d_point_track_head_ckpt_164335139.json"),
            summary="MooG backbone plus the released cross-attention point-track readout: query points on the "
            "first frame in, tracks and visibility over 16 frames out.",
            usage="moog_points", pipeline_tag="other", pipeline_tasks=(POINT_TRACKING_TASK,),
            datasets=("Ego4D",), base_model="rep4d/moog-backbone", extra_tags=("point-tracking", "off-the-grid"),
        ),
        Release(
            name="moog-box-tracking", title="MooG box tracking", method="moog",
            files=(f"{_MOOG_BACKBONE}.npz", "moog_ego4d_box_track_head_ckpt_164335139.npz"),
            manifests=(f"{_MOOG}{_MOOG_BACKBONE}.json", f"{_MOOG}moog_ego4d_box_track_head_ckpt_164335139.json"),
            summary="MooG backbone plus the released cross-attention box-track readout: boxes on the first frame "
            "in, boxes over 16 frames out.",
            usage="moog_boxes", pipeline_tag="other", datasets=("Ego4D",), base_model="rep4d/moog-backbone",
            extra_tags=("box-tracking", "off-the-grid"),
        ),
        _rvm("small", "S", "pretrain_rvm_small16_256_204031069"),
        _rvm("base", "B", "pretrain_rvm_base16_256_203916225"),
        _rvm("large", "L", "pretrain_rvm_large16_256_202497301"),
        _rvm("huge", "H", "pretrain_rvm_huge16_256_203854202"),
    ]
}


def release_for(repo_id: str | None = None, files=(), num_parameters: int | None = None) -> Release | None:
    """The release a publish call is about: from the repo name, else from the released file names."""
    if repo_id and repo_id.split("/")[-1] in RELEASES:
        return RELEASES[repo_id.split("/")[-1]]
    names = tuple(Path(f).name for f in files)
    for release in RELEASES.values():
        if names and names == release.files:
            return release
    return None


def _format_count(count: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f}{unit}"
    return str(count)


def input_format(config, processor) -> str:
    """What the model takes, from its config and video processor."""
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
):
    """A ``huggingface_hub.ModelCard`` from ``model_cards/template.md`` (never validated: that needs the Hub)."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    method = method or (release.method if release else config.model_type)
    paper = PAPERS.get(method)
    tags = ["video", "self-supervised", "custom_code", "rep4d", method]
    if release:
        tags += list(release.extra_tags)
    if paper:
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
        files=[(name, CHECKPOINT_URL.format(name)) for name in release.files] if release and not demo_model else [],
        publish_command=(
            f"rep4d publish {' '.join(release.files)} --repo-id {release.repo_id} --output {release.name}"
            if release else None
        ),
        model_class=model_class.__name__,
        num_parameters=f"{num_parameters:,}",
        num_parameters_short=_format_count(num_parameters),
        auto_classes=served_auto_classes or [],
        pipeline_tasks=list(release.pipeline_tasks) if release else [],
        input_format=input_format(config, processor),
        usage=usage_code or (USAGE[usage_key].replace("{repo_id}", repo_id) if usage_key else None),
        benchmarks=BENCHMARKS.get(method),
        eval_results=list(release.eval_results) if release else [],
        limitations=LIMITATIONS.get(method, []) if limitations is None else limitations,
        upstream=UPSTREAM,
        training_command=training_command,
        training_summary=training_summary,
    )
    return card


@dataclass
class PublishResult:
    output_dir: Path
    repo_id: str
    release: Release | None
    model_class: str
    num_parameters: int
    files: list[str]
    dry_run: bool
    pushed: bool = False
    commit_url: str | None = None


def _plan_file(plan, max_shard_size) -> dict:
    """What a dry run would have written as weights: tensor names, shapes and the shard layout."""
    from rep4d.conversion import _shard_groups

    groups = _shard_groups(plan, parse_size(max_shard_size))
    total = len(groups)
    shards = {}
    for index, names in enumerate(groups, start=1):
        filename = "model.safetensors" if total == 1 else f"model-{index:05d}-of-{total:05d}.safetensors"
        shards[filename] = {name: list(plan.target_shapes[name]) for name in names}
    total_bytes = sum(
        math.prod(shape) * plan.target_dtypes[name].itemsize for name, shape in plan.target_shapes.items()
    )
    return {"model_class": plan.model_class.__name__, "num_parameters": plan.num_parameters,
            "total_bytes": total_bytes, "shards": shards}


def publish(
    checkpoints=None,
    repo_id: str = "",
    output_dir: str | os.PathLike = "",
    *,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    release: Release | str | None = None,
    dry_run: bool = False,
    push: bool = False,
    overwrite: bool = False,
    private: bool = False,
    max_shard_size: str | int = "5GB",
    progress: bool = False,
    method: str | None = None,
    preset: str | None = None,
    demo_model: bool = False,
    **overrides,
) -> PublishResult:
    """Convert ``checkpoints`` into a Hub-ready folder at ``output_dir`` (written atomically) and optionally push it.

    ``dry_run`` plans the conversion from the shapes alone (``shapes=`` or the checkpoint headers): the folder gets
    everything except the weights (config, card, processor, code, ``weights_plan.json``); it cannot be pushed.
    """
    if not repo_id or "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'owner/name', got {repo_id!r}")
    if push and dry_run:
        raise ValueError("a dry run has no weights to push; drop --dry-run or --push")
    if checkpoints is None and shapes is None:
        raise ValueError("pass checkpoint file(s) or, for a dry run, shapes")
    if shapes is not None and not dry_run:
        raise ValueError("shapes alone can only be planned (dry_run=True); real weights need checkpoint files")
    files = [checkpoints] if isinstance(checkpoints, (str, os.PathLike)) else list(checkpoints or [])
    arrays = open_checkpoint(files) if checkpoints is not None and not dry_run else None
    try:
        if shapes is None:
            if arrays is None:
                header = open_checkpoint(files)
                shapes = checkpoint_shapes(header)
                header.close()
            else:
                shapes = checkpoint_shapes(arrays)
        converter, variant = identify_checkpoint(dict(shapes), method)
        plan = plan_conversion(dict(shapes), converter, variant, preset=preset, **overrides)
        if isinstance(release, str):
            release = RELEASES[release]
        release = release or release_for(repo_id, files)
        processor = converter.video_processor(plan.config, variant)
        with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
            if dry_run:
                plan.config.architectures = [plan.model_class.__name__]
                plan.config.save_pretrained(tmp)
                (tmp / "weights_plan.json").write_text(json.dumps(_plan_file(plan, max_shard_size), indent=1))
            else:
                write_model_folder(plan, arrays, tmp, max_shard_size=max_shard_size, progress=progress)
            if processor is not None:
                processor.save_pretrained(tmp)
            tasks = release.pipeline_tasks if release else ()
            export_remote_code(tmp, model_class=plan.model_class, pipeline_tasks=tasks)
            auto_map = json.loads((tmp / "config.json").read_text())["auto_map"]
            card = build_card(
                release, repo_id, plan.num_parameters, plan.config, processor, plan.model_class,
                served_auto_classes=[f"{key}: {value}" for key, value in sorted(auto_map.items())],
                demo_model=demo_model,
            )
            card.save(tmp / "README.md")
            written = sorted(path.name for path in tmp.iterdir())
    finally:
        if arrays is not None:
            arrays.close()
    result = PublishResult(
        Path(output_dir), repo_id, release, plan.model_class.__name__, plan.num_parameters, written, dry_run
    )
    if push:
        result.commit_url = push_folder(output_dir, repo_id, private=private)
        result.pushed = True
    return result


def push_folder(folder: str | os.PathLike, repo_id: str, private: bool = False, commit_message: str | None = None):
    """Create the Hub repo if needed and upload ``folder`` (needs the network and a token)."""
    import huggingface_hub

    huggingface_hub.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    info = huggingface_hub.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        repo_type="model",
        commit_message=commit_message or f"Upload {repo_id.split('/')[-1]} converted with rep4d",
    )
    return str(getattr(info, "commit_url", info))


def write_release_cards(output_root: str | os.PathLike = MODEL_CARDS_DIR, root: Path = MANIFESTS_DIR) -> list[Path]:
    """Generate ``<output_root>/<release>/README.md`` for every release from the manifests (shapes only)."""
    written = []
    for release in RELEASES.values():
        shapes = release.shapes(root)
        converter, variant = identify_checkpoint(shapes)
        plan = plan_conversion(shapes, converter, variant)
        expected = release.num_parameters_from_manifests(root)
        if plan.num_parameters != expected:
            raise ValueError(f"{release.name}: the model has {plan.num_parameters:,} parameters, manifests {expected:,}")
        processor = converter.video_processor(plan.config, variant)
        auto = _served_auto_classes(plan.config.model_type, plan.model_class)
        card = build_card(release, release.repo_id, plan.num_parameters, plan.config, processor, plan.model_class,
                          served_auto_classes=auto)
        path = Path(output_root) / release.name / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        card.save(path)
        written.append(path)
    return written


def _served_auto_classes(model_type: str, model_class: type) -> list[str]:
    """The auto_map entries a published folder of ``model_class`` gets (names as ``export_remote_code`` writes)."""
    from rep4d.remote_code import auto_classes_for

    config_class, models, _ = auto_classes_for(model_type)
    served = dict(models)
    if model_class not in served.values():
        served["AutoModel"] = model_class
    entries = {"AutoConfig": config_class, **served}
    return [f"{key}: {cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for key, cls in sorted(entries.items())]


ZOO_DIR = Path(importlib.import_module("rep4d.model_zoo").__file__).parent
REPO_ROOT = PACKAGE_ROOT.parent
# Shell variables of scripts/train_tiny_models.sh spelled out in the cards (defaults of the script).
_SCRIPT_VARIABLES = {"$PYTHON": "python", "$RUNS": "runs/tiny", "$ZOO": "model_zoo"}


def zoo_training_commands(script: str | os.PathLike | None = None) -> dict[str, str]:
    """The training command of each method of ``scripts/train_tiny_models.sh`` (``4ds``, ``distill``, ``rvm``...),
    with its shared options and default variables spelled out, read from the script's ``case`` block."""
    from rep4d.model_zoo import TRAINING_SCRIPT

    path = Path(script) if script else REPO_ROOT / TRAINING_SCRIPT
    if not path.is_file():
        return {}
    text = path.read_text()
    common = re.search(r"^COMMON=\((.*?)\)\s*$", text, flags=re.MULTILINE)
    commands = {}
    for match in re.finditer(r"^\s*([\w-]+)\)\s*\n(.*?);;", text, flags=re.MULTILINE | re.DOTALL):
        lines = [line.strip() for line in match.group(2).splitlines()]
        lines = [line for line in lines if line and not line.startswith("publish ")]
        command = " ".join(line.rstrip("\\").strip() for line in lines)
        if common:
            command = command.replace('"${COMMON[@]}"', common.group(1).strip())
        for variable, value in _SCRIPT_VARIABLES.items():
            command = command.replace(f'"{variable}', f'"{value}').replace(variable, value)
        commands[match.group(1)] = command.replace('"', "")
    return commands


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


def write_zoo_cards(zoo_dir: str | os.PathLike = ZOO_DIR, script: str | os.PathLike | None = None) -> list[Path]:
    """Honest cards for the embedded demo models (``model_zoo/<name>/``, Hub-format folders trained on synthetic
    clips), from the same template, saved as ``<folder>/README.md``. Every folder must be listed in
    ``rep4d.model_zoo.ZOO_MODELS`` (what it is and how it was trained)."""
    from transformers import AutoConfig

    from rep4d.model_zoo import ZOO_MODELS

    commands = zoo_training_commands(script)
    written = []
    for folder in sorted(Path(zoo_dir).glob("*/config.json")):
        folder = folder.parent
        if folder.name not in ZOO_MODELS:
            raise ValueError(f"model_zoo/{folder.name} is not described in rep4d.model_zoo.ZOO_MODELS "
                             f"(known: {', '.join(ZOO_MODELS)})")
        zoo_model = ZOO_MODELS[folder.name]
        config = AutoConfig.from_pretrained(folder)
        architecture = (config.architectures or [zoo_model.model_class])[0]
        model_class = type(architecture, (), {})
        processor = None
        if (folder / "video_preprocessor_config.json").exists():
            from transformers import AutoVideoProcessor

            processor = AutoVideoProcessor.from_pretrained(folder)
        num_parameters = _count_safetensors(folder)
        method = config.model_type if config.model_type in PAPERS else getattr(
            getattr(config, "backbone_config", None), "model_type", None
        )
        command = zoo_model.training_command
        if zoo_model.training in commands:
            command += f"\n# which runs:\n{commands[zoo_model.training]}"
        card = build_card(
            None, f"rep4d/{folder.name}", num_parameters, config, processor, model_class, demo_model=True,
            title=f"{folder.name} (demo model)", method=method,
            summary=f"A small `{architecture}` embedded in the rep4d package for `rep4d demo` "
            f"(demo step `{zoo_model.demo_step}`): {zoo_model.description}.",
            training_command=command, training_summary=zoo_training_summary(folder),
            limitations=zoo_limitations(config, num_parameters), usage_code=ZOO_USAGE.format(
                model_class=zoo_model.model_class, name=folder.name),
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
