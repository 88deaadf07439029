"""The papers the model cards cite and the results they publish, as Hub ``model-index`` entries.

:data:`PAPERS` (title, arXiv id, BibTeX; the Omnivorous DINOv2 release has no paper: its card cites the repository),
:data:`BENCHMARKS` (what each paper evaluates on, in words), and the published result tables copied from the papers:
Scaling 4D Representations Tables 2, 3 and 9 (:data:`FOURDS_TABLES`), Moving Off-the-Grid Tables 1-4
(:data:`MOOG_TABLES`), each result with its paper and table as the source. :func:`fourds_results` and
:func:`moog_results` turn rows of those tables into ``huggingface_hub.EvalResult`` keyword arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

UPSTREAM = "https://github.com/google-deepmind/representations4d"


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
