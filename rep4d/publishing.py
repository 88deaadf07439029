"""Hub publishing of the released checkpoints (``rep4d publish``): the release table and the Hub-ready folder.

A published folder holds the converted weights (safetensors), ``config.json`` with ``auto_map`` for every Auto class
the repo serves and ``custom_pipelines`` for the rep4d pipelines it supports, the video processor config, the model
code copied flat (so ``trust_remote_code=True`` works without rep4d) and a ``README.md`` model card
(:func:`rep4d.cards.build_card`).

``RELEASES`` describes how each of the twelve released checkpoints of ``representations4d`` is published (title,
summary, usage, tags, the papers' results from :mod:`rep4d.papers`). Release names, file names and URLs come from one
table, the download table of :mod:`rep4d.releases` (``rep4d download NAME``): a publishing entry exists for every
download entry and takes its files from there. An Omnivorous DINOv2 release is published as a plain transformers
folder (``Dinov2WithRegistersModel`` + image processor, no remote code). Nothing here needs the network except
``push=True`` (``huggingface_hub.create_repo`` + ``upload_folder``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rep4d.cards import MODEL_CARDS_DIR, build_card
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
from rep4d.papers import FOURDS_PROTOCOL, PAPERS, Paper, fourds_results, moog_results
from rep4d.pipelines import DEPTH_TASK, FEATURE_TASK, POINT_TRACKING_TASK
from rep4d.releases import OFFICIAL_BASE_URL, release_files
from rep4d.releases import RELEASES as DOWNLOADS
from rep4d.remote_code import export_remote_code

# Shipped with the package (package data), so publishing works from a plain `pip install`.
MANIFESTS_DIR = Path(__file__).resolve().parent / "manifests"


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
        return manifest_shapes(self.manifest_paths(root))


def manifest_shapes(paths) -> dict[str, tuple[int, ...]]:
    """The array shapes of one or more checkpoint manifests (JSON, e.g. a backbone and its head), merged."""
    shapes = {}
    for path in paths:
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


def _fourds_backbone(title: str, summary: str, settings_note: str) -> Release:
    """A released 4DS backbone: the 4DS paper's row ``title`` (e.g. ``4DS-e``) is its results."""
    return Release(
        name=title.lower(), title=title, method="fourds", summary=summary, usage="fourds_backbone",
        pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,), extra_tags=("masked-autoencoder", "vit"),
        eval_results=fourds_results(title), results_note=_FOURDS_TABLE_NOTE.format(row=title) + " " + settings_note,
        protocol=FOURDS_PROTOCOL,
    )


def _moog(name: str, title: str, summary: str, pipeline_tag: str = "other", base_model: str | None = "rep4d/moog",
          results_note: str = _MOOG_NOTE, **fields) -> Release:
    """A released MooG checkpoint (Ego4D, judging by the file names): the backbone, or the backbone with a head."""
    return Release(name=name, title=title, method="moog", summary=summary, pipeline_tag=pipeline_tag,
                   datasets=("Ego4D",), base_model=base_model, results_note=results_note, **fields)


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
        _fourds_backbone(
            "4DS-B-dist-e", "ViT-B video masked autoencoder on 2x16x16 tubelets, distilled from 4DS-e (judging by its "
            "name): a 4D (space + time) self-supervised video representation for depth, tracking and pose readouts.",
            "The paper has no fine-tuning row for 4DS-B-dist-e (Tables 3 and 9 do not list it): only the "
            "frozen-backbone numbers of Table 2 exist.",
        ),
        _fourds_backbone(
            "4DS-e", "ViT-e (3.8B parameters) video masked autoencoder on 2x16x16 tubelets from the 4DS scaling study.",
            "Settings: `frozen` (Table 2), `fine-tuned-20k` (Table 3), `fine-tuned-40k` and `fine-tuned-80k` "
            "(Table 9).",
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
        _moog(
            "moog", "MooG backbone", "Moving Off-the-Grid: a recurrent video model whose latent tokens are not tied "
            "to the pixel grid (convolutional encoder, transformer corrector and predictor).",
            usage="moog_backbone", pipeline_tag="video-classification", pipeline_tasks=(FEATURE_TASK,),
            base_model=None, extra_tags=("off-the-grid", "recurrent"), eval_results=moog_results(),
        ),
        _moog(
            "moog-points", "MooG point tracking", "MooG backbone plus the released cross-attention point-track "
            "readout: query points on the first frame in, tracks and visibility over 16 frames out.",
            usage="moog_points", pipeline_tasks=(POINT_TRACKING_TASK,), extra_tags=("point-tracking", "off-the-grid"),
            eval_results=moog_results(("MOVi-E points", "DAVIS points", "DAVIS points, 8 frames",
                                       "DAVIS points, full length")),
        ),
        _moog(
            "moog-boxes", "MooG box tracking", "MooG backbone plus the released cross-attention box-track readout: "
            "boxes on the first frame in, boxes over 16 frames out.",
            usage="moog_boxes", extra_tags=("box-tracking", "off-the-grid"),
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


def release_for(repo_id: str | None = None, files=()) -> Release | None:
    """The release a publish call is about: from the repo name, else from the released file names."""
    name = repo_id.split("/")[-1] if repo_id else None
    if name in RELEASES or name in RELEASE_ALIASES:
        return RELEASES[name]
    names = tuple(Path(f).name for f in files)
    for release in RELEASES.values():
        if names and names == release.files:
            return release
    return None


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
