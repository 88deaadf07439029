"""Hub publishing: model cards and Hub-ready folders for the released checkpoints (``rep4d publish``).

A published folder holds the converted weights (safetensors), ``config.json`` with ``auto_map`` for every Auto class
the repo serves and ``custom_pipelines`` for the rep4d pipelines it supports, the video processor config, the model
code copied flat (so ``trust_remote_code=True`` works without rep4d) and a ``README.md`` model card built with
``huggingface_hub.ModelCard`` from the one template in ``model_cards/template.md``.

``RELEASES`` describes how each of the twelve released checkpoints of ``representations4d`` is published (title,
summary, usage, tags, the papers' results). Release names, file names and URLs come from one table, the download
table of :mod:`rep4d.releases` (``rep4d download NAME``): a publishing entry exists for every download entry and
takes its files from there. An Omnivorous DINOv2 release is published as a plain transformers folder
(``Dinov2WithRegistersModel`` + image processor, no remote code).

The cards carry the numbers the papers publish (``model-index``), copied from the papers' result tables, each with
its paper and table as the source. Nothing here needs the network except
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
from rep4d.releases import OFFICIAL_BASE_URL, release_files
from rep4d.releases import RELEASES as DOWNLOADS
from rep4d.remote_code import export_remote_code

# Shipped with the package (package data), so publishing works from a plain `pip install`.
PACKAGE_ROOT = Path(__file__).resolve().parent
MANIFESTS_DIR = PACKAGE_ROOT / "manifests"
MODEL_CARDS_DIR = Path(importlib.import_module("rep4d.model_cards").__file__).parent
TEMPLATE_PATH = MODEL_CARDS_DIR / "template.md"
UPSTREAM = "https://github.com/google-deepmind/representations4d"
# The representations4d README: software under Apache 2.0, "all other materials" (the weights) under CC-BY 4.0.
WEIGHTS_LICENSE = "cc-by-4.0"
DEMO_NOTE = (
    "Trained on synthetic data for demonstration; convert the released checkpoints for real use "
    "(`rep4d convert` / `rep4d publish`)."
)


@dataclass(frozen=True)
class Paper:
    """What a card cites: a paper (``arxiv`` id) or, for a release without one, the release itself (``link``)."""

    title: str
    arxiv: str | None
    citation: str
    link: str | None = None

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.arxiv}" if self.arxiv else (self.link or UPSTREAM)


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
    # The official repository ships Omnivorous DINOv2 (omnivorous/vit.py, the inference notebook and two safetensors
    # files) without naming a paper or an arXiv id: the card cites the repository, nothing is invented.
    "omnivorous": Paper(
        "Omnivorous DINOv2 (google-deepmind/representations4d, omnivorous/)", None,
        "@misc{representations4d_omnivorous,\n  title={Omnivorous DINOv2: released encoders and inference demo},\n  "
        "author={{Google DeepMind}},\n  howpublished={\\url{https://github.com/google-deepmind/representations4d}},\n  "
        "note={omnivorous/vit.py and colabs/omnivorous\\_dino\\_inference\\_demo.ipynb}\n}",
        link=UPSTREAM,
    ),
}

# Benchmarks the papers evaluate on, in words (for the cards of releases that carry no numbers, e.g. RVM).
BENCHMARKS = {
    "fourds": "depth estimation (ScanNet readout released), point tracking, box tracking, camera pose and "
    "action classification with attention readouts on the frozen backbone (4DS paper, Sec. 3.2 of the spec)",
    "moog": "point tracking with TAP-Vid metrics (occlusion accuracy, <delta position accuracy, Average Jaccard) on "
    "256x256 frames, box tracking and depth readouts (MooG paper)",
    "rvm": "DAVIS-2017 semi-supervised video object segmentation (J&F), JHMDB pose propagation (PCK@0.1..0.5) and "
    "VIP human part propagation (mIoU) by label propagation on the frozen features (RVM paper)",
    "omnivorous": "in its official demo, how well the dense patch features of an RGB image and of an auxiliary image "
    "of the same scene (colourised depth, X-ray, ...) align (mean per-patch cosine), shown with PCA pictures",
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


# ----------------------------------------------------------------------------------------------------------------------
# The papers' published results (Scaling 4D Representations Tables 2, 3, 9; Moving Off-the-Grid Tables 1-4),
# as model-index entries
# ----------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    """One column of a paper's result table: the task, the dataset and the metric as the Hub's model-index names
    them. ``scale`` converts the table's unit to the metric's (0.1 for the 4DS tables' AbsRel x10)."""

    task_type: str
    task_name: str
    dataset_type: str
    dataset_name: str
    metric_type: str
    metric_name: str
    scale: float = 1.0


FOURDS_BENCHMARKS = {
    "RE10k": Benchmark("camera-pose-estimation", "Camera pose (first vs last frame)", "realestate10k",
                       "RealEstate10K", "mean_corner_error",
                       "Mean end-point error of 8 cube corners (raw, lower is better)"),
    "Percep. test": Benchmark("point-tracking", "Point tracking (readout trained on Kubric MOVi-E)", "perception_test",
                              "Perception Test", "average_jaccard", "Average Jaccard (%)"),
    "ScanNet": Benchmark("depth-estimation", "Monocular depth", "scannet", "ScanNet", "abs_rel",
                         "AbsRel (lower is better; the paper's tables print 10x this value)", scale=0.1),
    "Waymo": Benchmark("box-tracking", "Box tracking", "waymo_open_dataset", "Waymo Open", "mean_iou",
                       "Mean IoU, first frame excluded (%)"),
    "SSv2": Benchmark("video-classification", "Action classification", "something_something_v2",
                      "Something-Something v2", "accuracy", "Top-1 accuracy (%)"),
    "K700": Benchmark("video-classification", "Action classification", "kinetics700_2020", "Kinetics-700-2020",
                      "accuracy", "Top-1 accuracy (%)"),
}
FOURDS_COLUMNS = tuple(FOURDS_BENCHMARKS)  # the column order of the 4DS paper's Tables 2 and 3

# (setting, source) -> {model row: values in FOURDS_COLUMNS order, as printed (ScanNet AbsRel x10)}
_4DS_PAPER = "Scaling 4D Representations"
FOURDS_TABLES = {
    ("frozen", f"{_4DS_PAPER}, Table 2 (frozen backbone + attention readout)"): {
        "4DS-B-dist-e": (0.34, 81.4, 1.21, 76.3, 60.3, 46.4),
        "4DS-e": (0.27, 82.4, 0.95, 78.0, 64.3, 54.4),
    },
    ("fine-tuned-20k", f"{_4DS_PAPER}, Table 3 (end-to-end fine-tuning, 20k steps)"): {
        "4DS-e": (0.28, 82.9, 0.73, 77.5, 68.9, 52.7),
    },
    # Table 9 prints SSv2, K700, RE10k, Percep. test, ScanNet, Waymo: reordered here to FOURDS_COLUMNS.
    ("fine-tuned-40k", f"{_4DS_PAPER}, Table 9 (end-to-end fine-tuning, 40k steps)"): {
        "4DS-e": (0.24, 85.1, 0.68, 81.5, 69.6, 55.2),
    },
    ("fine-tuned-80k", f"{_4DS_PAPER}, Table 9 (end-to-end fine-tuning, 80k steps)"): {
        "4DS-e": (0.24, 85.8, 0.65, 82.8, 69.0, 60.4),
    },
}

MOOG_BENCHMARKS = {
    "MOVi-E points": Benchmark("point-tracking", "Point tracking", "movi_e", "Kubric MOVi-E", "average_jaccard",
                               "Average Jaccard (fraction)"),
    "MOVi-E depth": Benchmark("depth-estimation", "Monocular depth", "movi_e", "Kubric MOVi-E", "abs_rel",
                              "AbsRel (lower is better)"),
    "MOVi-E boxes": Benchmark("box-tracking", "Box tracking", "movi_e", "Kubric MOVi-E", "mean_iou",
                              "Mean IoU, first frame excluded (fraction)"),
    "DAVIS points": Benchmark("point-tracking", "Point tracking (zero-shot)", "davis", "DAVIS (TAP-Vid)",
                              "average_jaccard", "Average Jaccard (fraction)"),
    "Waymo boxes": Benchmark("box-tracking", "Box tracking (zero-shot)", "waymo_open_dataset", "Waymo Open",
                             "mean_iou", "Mean IoU, first frame excluded (fraction)"),
    "DAVIS points, 8 frames": Benchmark("point-tracking", "Point tracking, 8-frame clips", "davis", "DAVIS (TAP-Vid)",
                                        "average_jaccard", "Average Jaccard (fraction)"),
    "DAVIS points, full length": Benchmark("point-tracking", "Point tracking, full-length videos", "davis",
                                           "DAVIS (TAP-Vid)", "average_jaccard", "Average Jaccard (fraction)"),
    "Waymo depth": Benchmark("depth-estimation", "Monocular depth", "waymo_open_dataset", "Waymo Open", "abs_rel",
                             "AbsRel (lower is better)"),
}

# (setting, source) -> {column: the MooG row's value, as printed}. The paper's MooG models were trained on Kubric
# MOVi-E (paper-results.md); the released checkpoints are named ego4d: the numbers describe the method, not them.
_MOOG_PAPER = "Moving Off-the-Grid"
_MOOG_MODEL = "MooG trained on Kubric MOVi-E, not the released ego4d checkpoints"
MOOG_TABLES = {
    ("frozen", f"{_MOOG_PAPER}, Table 1 (frozen representations; {_MOOG_MODEL})"): {
        "MOVi-E points": 0.839, "MOVi-E depth": 0.0359, "MOVi-E boxes": 0.793, "DAVIS points": 0.687,
        "Waymo boxes": 0.730,
    },
    ("end-to-end", f"{_MOOG_PAPER}, Table 2 (end to end; {_MOOG_MODEL})"): {
        "MOVi-E points": 0.886, "MOVi-E depth": 0.0263, "MOVi-E boxes": 0.803, "DAVIS points": 0.778,
        "Waymo boxes": 0.719,
    },
    ("end-to-end-8-frames", f"{_MOOG_PAPER}, Table 3 (points against trackers, end to end; {_MOOG_MODEL})"): {
        "DAVIS points, 8 frames": 0.824,
    },
    ("end-to-end-full-length", f"{_MOOG_PAPER}, Table 3 (points against trackers, end to end; {_MOOG_MODEL})"): {
        "DAVIS points, full length": 0.510,
    },
    ("end-to-end", f"{_MOOG_PAPER}, Table 4 (depth on Waymo, end to end; {_MOOG_MODEL})"): {
        "Waymo depth": 0.094,
    },
}


def _eval_result(benchmark: Benchmark, value: float, setting: str, source: str, url: str) -> dict:
    return dict(
        task_type=benchmark.task_type, task_name=benchmark.task_name, dataset_type=benchmark.dataset_type,
        dataset_name=benchmark.dataset_name, dataset_config=setting, metric_type=benchmark.metric_type,
        metric_name=benchmark.metric_name, metric_value=round(value * benchmark.scale, 6), source_name=source,
        source_url=url,
    )


def fourds_results(row: str, columns=FOURDS_COLUMNS, settings=None) -> tuple[dict, ...]:
    """EvalResult kwargs of the 4DS paper's ``row`` ("4DS-e", "4DS-B-dist-e") in every table that has it (or the
    ``settings`` given), restricted to ``columns``. AbsRel is converted from the tables' x10 to the real value.

    The model-index groups results by task, dataset and ``dataset_config``: the setting ("frozen",
    "fine-tuned-20k", ...) goes there so that each table keeps its own source."""
    url = PAPERS["fourds"].url
    results = []
    for (setting, source), rows in FOURDS_TABLES.items():
        if row in rows and (settings is None or setting in settings):
            values = dict(zip(FOURDS_COLUMNS, rows[row]))
            results += [_eval_result(FOURDS_BENCHMARKS[c], values[c], setting, source, url) for c in columns]
    return tuple(results)


def moog_results(columns=None) -> tuple[dict, ...]:
    """EvalResult kwargs of the MooG paper's MooG rows (Tables 1-4), restricted to ``columns``."""
    url = PAPERS["moog"].url
    return tuple(
        _eval_result(MOOG_BENCHMARKS[column], value, setting, source, url)
        for (setting, source), row in MOOG_TABLES.items()
        for column, value in row.items()
        if columns is None or column in columns
    )


FOURDS_PROTOCOL = """The numbers follow the 4DS paper's readout protocol (section 3.3 and appendix A.2):

- **Frozen backbone** (Table 2): the backbone is not trained; an attention readout is trained on its features.
  **Fine-tuned** (Tables 3 and 9): backbone and readout trained end to end for 20k / 40k / 80k steps, the backbone at
  0.003x the readout's learning rate.
- **Input**: a 16-frame clip, resampled to the backbone's input format (here 16 frames of 224x224).
- **Readout layer**: the features (T, N, C) at **95% of the depth** for the 4D tasks (camera pose, point tracking,
  depth, box tracking) and at **75%** for frozen SSv2 / Kinetics-700 classification; resampled in time to 16 frames,
  plus a learned (T, N, C) position embedding.
- **Readout**: LayerNorm, learned temporal embedding, cross-attention from the task's queries, a residual MLP of 4x
  the width, a final linear layer. Queries / width / heads: SSv2 1 learned query, 768 / 12; Kinetics-700 1 query,
  1024 / 16 (test: 7 clips, softmax averaged); RE10k pose 1 query, 8 heads, first and last frames (rotation projected
  to SO(3) by Procrustes); ScanNet depth one query per 2x8x8 patch, 1024 / 16, depth outside (0.001, 10) m masked;
  Waymo boxes one query per box track, 1024 / 4; Perception Test points one query per track per 2-frame chunk,
  1024 / 8, trained on Kubric MOVi-E.
- **Training** (frozen): 1.28M examples, batch 32 (40k steps), AdamW (weight decay 1e-4), learning rate swept over
  {1e-4, 3e-4, 1e-3} with the best kept, 1k linear warm-up steps, cosine decay to 1e-7.

Units: RE10k is the raw mean end-point error of 8 cube corners (lower is better); Perception Test, Waymo, SSv2 and
Kinetics-700 are percent. ScanNet AbsRel is printed **x10** in the paper's tables (1.21 there means 0.121); the
`model-index` and the results table give the real AbsRel."""


@dataclass(frozen=True)
class Release:
    """How one released checkpoint of representations4d is published.

    ``name`` is the release name of the download table (:data:`rep4d.releases.RELEASES`), which is the one source of
    the file names and URLs: :attr:`files`, :meth:`urls` and :attr:`manifests` are read from it."""

    name: str  # release name = repo name under rep4d/
    title: str
    method: str  # fourds | moog | rvm | omnivorous
    summary: str
    usage: str  # key of USAGE
    pipeline_tag: str | None
    pipeline_tasks: tuple[str, ...] = ()
    datasets: tuple[str, ...] = ()
    base_model: str | None = None
    extra_tags: tuple[str, ...] = ()
    eval_results: tuple[dict, ...] = field(default=())  # EvalResult kwargs: the papers' numbers (paper-results.md)
    results_note: str = ""  # what the numbers are (and are not) for these weights, in the card's Results section
    protocol: str = ""  # the evaluation protocol behind the numbers (markdown)

    @property
    def download(self):
        """The entry of the download table (:mod:`rep4d.releases`) with this name."""
        return DOWNLOADS[self.name]

    @property
    def files(self) -> tuple[str, ...]:
        """Released file(s), in the order `rep4d publish` takes them (backbone first for a tracking head)."""
        return tuple(entry.file.filename for entry in release_files(self.download))

    def urls(self) -> list[tuple[str, str]]:
        """(file name, official URL) of every file."""
        return [(entry.file.filename, entry.file.url(OFFICIAL_BASE_URL)) for entry in release_files(self.download)]

    def mirror_urls(self) -> list[str]:
        """Other official URLs of the same files (the Omnivorous notebook's bucket)."""
        return [mirror for entry in release_files(self.download) for mirror in entry.file.mirrors]

    @property
    def manifests(self) -> tuple[str, ...]:
        """Package-relative manifest JSONs of the files (shapes, parameter counts): ``<family>/<file stem>.json``."""
        return tuple(f"{entry.family}/{Path(entry.file.filename).stem}.json"
                     for entry in release_files(self.download))

    @property
    def remote_code(self) -> bool:
        """Whether the published folder carries rep4d's model code (False: transformers' own classes load it)."""
        return self.method != "omnivorous"

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


_FOURDS_TABLE_NOTE = (
    "The papers' numbers for this model (4DS paper, row {row}), as printed in the tables given as each result's "
    "source; they were not re-measured with this port."
)
_MOOG_NOTE = (
    "The MooG paper reports results for MooG models **trained on Kubric MOVi-E** (8-frame clips), evaluated on MOVi-E "
    "and zero-shot on DAVIS and Waymo Open. The released checkpoints are named `moog_ego4d_*`, i.e. trained on Ego4D "
    "(inferred from the file names), and the material this port relies on gives **no result for the released "
    "weights**: the numbers below describe the method as published, not these weights (each result's source says "
    "so). Points are average Jaccard and boxes mean IoU (first frame excluded) as fractions, depth AbsRel (raw), as "
    "in the paper's tables; settings: `frozen` (Table 1), `end-to-end` (Tables 2 and 4), `end-to-end-8-frames` and "
    "`end-to-end-full-length` (Table 3: DAVIS points against trackers, end to end)."
)
_NO_RESULTS = {
    "rvm": "No RVM results are available here: the material this port relies on relays no result numbers for the RVM "
    "paper, so none are given (no `model-index`); see the paper.",
    "omnivorous": "No results are available here for Omnivorous DINOv2: no paper or result table comes with the "
    "release, so none are given (no `model-index`). The official demo's alignment score is reproduced by "
    "`rep4d omnivorous` (and `rep4d.omnivorous.alignment_score`).",
}


def _rvm(size: str, letter: str) -> Release:
    return Release(
        name=f"rvm-{letter.lower()}", title=f"RVM-{letter}", method="rvm",
        summary=f"Recurrent Video Masked Autoencoder, {size} encoder (ViT-{letter}/16 at 256x256), with its recurrent "
        "cross-attention core and masked-reconstruction decoder: a streaming per-frame video representation.",
        usage="rvm", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
        extra_tags=("masked-autoencoder", "recurrent", "label-propagation"), results_note=_NO_RESULTS["rvm"],
    )


def _omnivorous(name: str, title: str, summary: str, base_model: str | None = None) -> Release:
    return Release(
        name=name, title=title, method="omnivorous", summary=summary, usage="omnivorous",
        pipeline_tag="image-feature-extraction", base_model=base_model,
        extra_tags=("dinov2", "vit", "multimodal-alignment"), results_note=_NO_RESULTS["omnivorous"],
    )


class ReleaseTable(dict):
    """``{release name: Release}``; the names this table used before the download table's names became the only
    ones (``moog-backbone``, ``moog-point-tracking``, ``moog-box-tracking``, ``4ds-b-dist-e-scannet-depth``) still
    look up their release (``table[old]``, :func:`resolve_release`), without being listed."""

    def __missing__(self, key):
        if key in RELEASE_ALIASES:
            return self[RELEASE_ALIASES[key]]
        raise KeyError(key)


#: former publishing names -> release names (issue 15's names, those of rep4d.releases)
RELEASE_ALIASES = {
    "4ds-b-dist-e-scannet-depth": "4ds-b-dist-e-depth",
    "moog-backbone": "moog",
    "moog-point-tracking": "moog-points",
    "moog-box-tracking": "moog-boxes",
}

RELEASES: dict[str, Release] = ReleaseTable(
    (release.name, release)
    for release in [
        Release(
            name="4ds-b-dist-e", title="4DS-B-dist-e", method="fourds",
            summary="ViT-B video masked autoencoder on 2x16x16 tubelets, distilled from 4DS-e (judging by its name): "
            "a 4D (space + time) self-supervised video representation for depth, tracking and pose readouts.",
            usage="fourds_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            extra_tags=("masked-autoencoder", "vit"), eval_results=fourds_results("4DS-B-dist-e"),
            results_note=_FOURDS_TABLE_NOTE.format(row="4DS-B-dist-e") + " The paper has no fine-tuning row for "
            "4DS-B-dist-e (Tables 3 and 9 do not list it): only the frozen-backbone numbers of Table 2 exist.",
            protocol=FOURDS_PROTOCOL,
        ),
        Release(
            name="4ds-e", title="4DS-e", method="fourds",
            summary="ViT-e (3.8B parameters) video masked autoencoder on 2x16x16 tubelets from the 4DS scaling study.",
            usage="fourds_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            extra_tags=("masked-autoencoder", "vit"), eval_results=fourds_results("4DS-e"),
            results_note=_FOURDS_TABLE_NOTE.format(row="4DS-e") + " Settings: `frozen` (Table 2), `fine-tuned-20k` "
            "(Table 3), `fine-tuned-40k` and `fine-tuned-80k` (Table 9).",
            protocol=FOURDS_PROTOCOL,
        ),
        Release(
            name="4ds-b-dist-e-depth", title="4DS-B-dist-e ScanNet depth", method="fourds",
            summary="4DS-B-dist-e backbone with the released attention-readout depth head trained on ScanNet "
            "(per-patch learned queries, 2x8x8 decoding patches): video in, a depth video out.",
            usage="fourds_depth", pipeline_tag="depth-estimation", pipeline_tasks=(DEPTH_TASK,),
            datasets=("ScanNet",), base_model="rep4d/4ds-b-dist-e", extra_tags=("depth-estimation", "video-depth"),
            eval_results=fourds_results("4DS-B-dist-e", columns=("ScanNet",)),
            results_note="The ScanNet number is the 4DS paper's Table 2 result for its backbone, 4DS-B-dist-e, "
            "under the paper's frozen readout protocol: a depth readout trained on the frozen backbone. The released "
            "head has that protocol's shape (features at 95% depth, width 1024, 16 heads, one query per 2x8x8 "
            "patch), but the material this port relies on does not say that it is the very readout behind the "
            "table's number, and it was not re-measured here: read it as the protocol's number. Unit: the paper's "
            "tables print AbsRel x10 (1.21 for this row); the real AbsRel is 0.121, the value given here.",
            protocol=FOURDS_PROTOCOL,
        ),
        Release(
            name="moog", title="MooG backbone", method="moog",
            summary="Moving Off-the-Grid: a recurrent video model whose latent tokens are not tied to the pixel grid "
            "(convolutional encoder, transformer corrector and predictor).",
            usage="moog_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            datasets=("Ego4D",), extra_tags=("off-the-grid", "recurrent"), eval_results=moog_results(),
            results_note=_MOOG_NOTE,
        ),
        Release(
            name="moog-points", title="MooG point tracking", method="moog",
            summary="MooG backbone plus the released cross-attention point-track readout: query points on the "
            "first frame in, tracks and visibility over 16 frames out.",
            usage="moog_points", pipeline_tag="other", pipeline_tasks=(POINT_TRACKING_TASK,),
            datasets=("Ego4D",), base_model="rep4d/moog", extra_tags=("point-tracking", "off-the-grid"),
            eval_results=moog_results(("MOVi-E points", "DAVIS points", "DAVIS points, 8 frames",
                                       "DAVIS points, full length")),
            results_note=_MOOG_NOTE,
        ),
        Release(
            name="moog-boxes", title="MooG box tracking", method="moog",
            summary="MooG backbone plus the released cross-attention box-track readout: boxes on the first frame "
            "in, boxes over 16 frames out.",
            usage="moog_boxes", pipeline_tag="other", datasets=("Ego4D",), base_model="rep4d/moog",
            extra_tags=("box-tracking", "off-the-grid"),
            eval_results=moog_results(("MOVi-E boxes", "Waymo boxes")),
            results_note=_MOOG_NOTE + " The paper also trains and evaluates MooG on Waymo boxes directly "
            "(250k steps): 0.667 IoU (not in the `model-index`: its table is not identified in our material).",
        ),
        _rvm("small", "S"),
        _rvm("base", "B"),
        _rvm("large", "L"),
        _rvm("huge", "H"),
        _omnivorous(
            "omnivorous-dinov2-b", "Omnivorous DINOv2 ViT-B/14",
            "The Omnivorous DINOv2 student (ViT-B/14) of representations4d: an image encoder adapted from DINOv2 so "
            "that an RGB image and an auxiliary image of the same scene (colourised depth, X-ray, ...) give aligned "
            "dense patch features. It runs on transformers' own `Dinov2WithRegistersModel` (no registers, tanh GELU, "
            "unit LayerScale): no remote code.",
            base_model="rep4d/frozen-dinov2-b",
        ),
        _omnivorous(
            "frozen-dinov2-b", "Frozen DINOv2 ViT-B/14 (Omnivorous teacher)",
            "The frozen DINOv2 ViT-B/14 teacher released with Omnivorous DINOv2 in representations4d, in the official "
            "flax ViT's form (class token without position embedding, no LayerScale, tanh GELU). It runs on "
            "transformers' own `Dinov2WithRegistersModel` (no registers, tanh GELU, unit LayerScale): no remote code.",
        ),
    ]
)
# One table of names: every download entry has a publishing entry and vice versa (tests/test_publishing.py).


def resolve_release(name: str) -> Release:
    """The release called ``name`` (a former publishing name is accepted); unknown: ValueError listing the names."""
    try:
        return RELEASES[name]
    except KeyError:
        raise ValueError(f"unknown release {name!r}; known: {', '.join(RELEASES)}") from None


def release_for(repo_id: str | None = None, files=(), num_parameters: int | None = None) -> Release | None:
    """The release a publish call is about: from the repo name, else from the released file names."""
    name = repo_id.split("/")[-1] if repo_id else None
    if name in RELEASES or name in RELEASE_ALIASES:
        return RELEASES[name]
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


@dataclass(frozen=True)
class ParameterCounts:
    """Parameters of a conversion: in the model, read from the released arrays, and in released arrays that the
    model never reads (the converter's ``ignored_keys``: e.g. the 4DS depth model's blocks above its readout layer)."""

    model: int
    read: int
    ignored: int = 0
    ignored_arrays: int = 0

    @property
    def released(self) -> int:
        return self.read + self.ignored

    def note(self) -> str:
        parts = []
        if self.model != self.read:
            parts.append(f"the {self.read:,} parameters read from the released arrays plus {self.model - self.read:,} "
                         "constants the conversion adds (the zero class-token position row, the zero mask token and "
                         "unit LayerScale vectors, which leave the outputs unchanged)")
        if self.ignored:
            parts.append(f"the released file(s) hold {self.released:,} parameters: {self.ignored:,} of them "
                         f"({self.ignored_arrays} arrays the model never reads) are not converted")
        return f"in the model; {'; '.join(parts)}" if parts else ""


def parameter_counts(plan, shapes: Mapping[str, tuple[int, ...]]) -> ParameterCounts:
    """:class:`ParameterCounts` of a conversion plan over checkpoint ``shapes`` (each array counted once)."""
    keys = {key for source in plan.sources.values() for key in source.keys}
    ignored = plan.converter.ignored_keys(dict(shapes), plan.config, plan.variant) - keys
    return ParameterCounts(
        model=plan.num_parameters, read=sum(math.prod(shapes[key]) for key in keys),
        ignored=sum(math.prod(shapes[key]) for key in ignored), ignored_arrays=len(ignored),
    )


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
    parameter_counts: ParameterCounts | None = None  # model vs released arrays (read / not converted)


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
            release = resolve_release(release)
        release = release or release_for(repo_id, files)
        processor = converter.video_processor(plan.config, variant)
        native = is_transformers_class(plan.model_class)
        with atomic_output_dir(output_dir, overwrite=overwrite) as tmp:
            if dry_run:
                plan.config.architectures = [plan.model_class.__name__]
                plan.config.save_pretrained(tmp)
                (tmp / "weights_plan.json").write_text(json.dumps(_plan_file(plan, max_shard_size), indent=1))
            else:
                write_model_folder(plan, arrays, tmp, max_shard_size=max_shard_size, progress=progress)
            if processor is not None:
                processor.save_pretrained(tmp)
            if native:  # transformers' own class (Omnivorous DINOv2): a plain folder, no remote code
                served = native_classes(plan.config, plan.model_class, processor)
            else:
                tasks = release.pipeline_tasks if release else ()
                export_remote_code(tmp, model_class=plan.model_class, pipeline_tasks=tasks)
                auto_map = json.loads((tmp / "config.json").read_text())["auto_map"]
                served = [f"{key}: {value}" for key, value in sorted(auto_map.items())]
            counts = parameter_counts(plan, shapes)
            card = build_card(
                release, repo_id, plan.num_parameters, plan.config, processor, plan.model_class,
                served_auto_classes=served, demo_model=demo_model, parameters=counts,
            )
            card.save(tmp / "README.md")
            written = sorted(path.name for path in tmp.iterdir())
    finally:
        if arrays is not None:
            arrays.close()
    result = PublishResult(
        Path(output_dir), repo_id, release, plan.model_class.__name__, plan.num_parameters, written, dry_run,
        parameter_counts=counts,
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
        converter, variant = identify_checkpoint(shapes, release.method)
        plan = plan_conversion(shapes, converter, variant)
        expected = release.num_parameters_from_manifests(root)
        counts = parameter_counts(plan, shapes)
        if counts.released != expected or (release.remote_code and plan.num_parameters != counts.read):
            raise ValueError(f"{release.name}: the model has {plan.num_parameters:,} parameters ({counts.read:,} read "
                             f"from the released arrays, {counts.ignored:,} not converted), manifests {expected:,}")
        processor = converter.video_processor(plan.config, variant)
        if is_transformers_class(plan.model_class):
            auto = native_classes(plan.config, plan.model_class, processor)
        else:
            auto = _served_auto_classes(plan.config.model_type, plan.model_class)
        card = build_card(release, release.repo_id, plan.num_parameters, plan.config, processor, plan.model_class,
                          served_auto_classes=auto, parameters=counts)
        path = Path(output_root) / release.name / "README.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        card.save(path)
        written.append(path)
    return written


def is_transformers_class(model_class: type) -> bool:
    """Whether ``model_class`` is one of transformers' own classes (its folder needs no remote code)."""
    return model_class.__module__.split(".")[0] == "transformers"


def native_classes(config, model_class: type, processor) -> list[str]:
    """The transformers classes that load a plain folder (no ``auto_map``): Auto class -> class, as the card lists."""
    entries = [f"AutoConfig: {type(config).__name__}", f"AutoModel: {model_class.__name__}"]
    if processor is not None:
        name = type(processor).__name__
        if name.endswith("ImageProcessorPil"):  # the PIL backend is chosen at load time
            entries.append(f'AutoImageProcessor: {name} (with backend="pil"; {name[:-3]} by default)')
        else:
            kind = "AutoImageProcessor" if "ImageProcessor" in name else "AutoVideoProcessor"
            entries.append(f"{kind}: {name}")
    return entries


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
