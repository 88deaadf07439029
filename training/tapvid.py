"""The TAP-Vid point-tracking protocol as tapnet runs it (``rep4d.training.tapvid``).

TAP-Vid numbers are only comparable when the query sampling, the scoring mode, the frames and the resolution are
those of the benchmark. This module reproduces tapnet's ``tapnet/tapvid/evaluation_datasets.py`` (checked against
the ``protocols/tapvid_queries`` fixtures, which ran that file unchanged):

* :func:`sample_queries_first` - one query per track, at its first visible frame; tracks never visible are dropped.
  Scored with ``query_mode="first"`` (only the frames after the query frame are evaluated).
* :func:`sample_queries_strided` - every ``query_stride`` (5) frames, one query per track visible at that frame,
  grouped by query frame, then by track; ``trackgroup`` is the source track. Scored with ``query_mode="strided"``
  (every frame but the query frame).
* :func:`resize_video` - ``mediapy.resize_video``: ``PIL.Image.resize((W, H), LANCZOS)`` on each uint8 frame.
* :func:`create_davis_dataset`, :func:`create_kinetics_dataset`, :func:`create_rgb_stacking_dataset` - the readers of
  the released pickles: frames resized to ``resolution`` (256x256), scaled to [-1, 1], points ``* (W, H)``, queries
  sampled. Pickles are read only through :class:`~rep4d.training.readout_data.RestrictedUnpickler` (numpy arrays,
  bytes and builtin containers; anything else is refused, never executed).

Coordinates follow tapnet: query points are (t, y, x), tracks (x, y), in pixels of the ``resolution`` raster.

Protocols (:class:`TapVidProtocol`, by name with :func:`get_tapvid_protocol`) pair the query sampling with its scoring
mode, so the two cannot be mismatched:

==================  =====================================================================================
``tapvid-first``    whole video, 256x256, first-visible queries, ``first`` scoring (TAP-Vid paper; tapnet)
``tapvid-strided``  whole video, 256x256, queries every 5 frames, ``strided`` scoring (TAP-Vid paper; tapnet)
``4ds-clip``        the 4DS paper's clip protocol (Scaling 4D Representations, section 3.3 / appendix A.2, as
                    summarised in the shared ``specs/paper-results.md``: "evaluate 16-frame clips at stride 4",
                    "queries from the first frame, tracks invisible there dropped"): the video is subsampled every
                    4th frame and cut into consecutive 16-frame clips (an incomplete last clip is dropped),
                    256x256, queries at the clip's first frame, ``first`` scoring.
==================  =====================================================================================

Benchmark scores are the mean over videos (clips) of the per-video metrics, as in tapnet.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rep4d.training.metrics import TAPVID_QUERY_MODES, TAPVID_THRESHOLDS, compute_tapvid_metrics

TAPVID_RESOLUTION = (256, 256)
DEFAULT_QUERY_STRIDE = 5
# How the queries of a protocol are sampled -> the only scoring mode that matches that sampling.
QUERY_SAMPLING_SCORING = {"first": "first", "strided": "strided", "first-frame": "first"}
TAPVID_FIELDS = ("video", "points", "occluded")
TAPVID_METRIC_NAMES = (
    "occlusion_accuracy",
    *(f"{kind}_{threshold}" for threshold in TAPVID_THRESHOLDS for kind in ("pts_within", "jaccard")),
    "average_jaccard",
    "average_pts_within_thresh",
)


# ----------------------------------------------------------------------------------------------------------------
# Query sampling (tapnet evaluation_datasets.sample_queries_strided / sample_queries_first)
# ----------------------------------------------------------------------------------------------------------------


def _check_tracks(target_occluded, target_points) -> tuple[np.ndarray, np.ndarray]:
    target_occluded = np.asarray(target_occluded)
    target_points = np.asarray(target_points)
    if target_occluded.ndim != 2 or target_points.shape != (*target_occluded.shape, 2):
        raise ValueError(
            "target_occluded must be (n_tracks, n_frames) bool and target_points (n_tracks, n_frames, 2) as (x, y); "
            f"got {target_occluded.shape} and {target_points.shape}"
        )
    if target_occluded.dtype != bool:
        target_occluded = target_occluded.astype(bool)
    return target_occluded, target_points


def sample_queries_strided(target_occluded, target_points, frames, query_stride: int = DEFAULT_QUERY_STRIDE) -> dict:
    """Queries every ``query_stride`` frames (tapnet ``sample_queries_strided``).

    Args:
        target_occluded: (N, T) bool, True where occluded.
        target_points: (N, T, 2) positions as (x, y) (pixels, or whatever unit; passed through).
        frames: (T, H, W, 3) video (passed through).
        query_stride: frames 0, s, 2s, ... are searched for visible points.

    Returns:
        ``video`` (1, T, H, W, 3), ``query_points`` (1, Q, 3) float64 (t, y, x), ``target_points`` (1, Q, T, 2),
        ``occluded`` (1, Q, T) and ``trackgroup`` (1, Q) int64 (the source track of each query). Queries are grouped
        by query frame, then by track index.
    """
    target_occluded, target_points = _check_tracks(target_occluded, target_points)
    if int(query_stride) < 1:
        raise ValueError(f"query_stride must be >= 1, got {query_stride}")
    num_tracks, num_frames = target_occluded.shape
    trackgroup = np.arange(num_tracks)
    queries, tracks, occs, groups = [], [], [], []
    for i in range(0, num_frames, int(query_stride)):
        mask = ~target_occluded[:, i]
        query = np.stack(
            [i * np.ones(num_tracks), target_points[:, i, 1], target_points[:, i, 0]], axis=-1
        )
        queries.append(query[mask])
        tracks.append(target_points[mask])
        occs.append(target_occluded[mask])
        groups.append(trackgroup[mask])
    if not queries:  # a video without frames
        queries, tracks = [np.zeros((0, 3))], [target_points]
        occs, groups = [target_occluded], [trackgroup]
    return {
        "video": np.asarray(frames)[np.newaxis],
        "query_points": np.concatenate(queries, axis=0)[np.newaxis],
        "target_points": np.concatenate(tracks, axis=0)[np.newaxis],
        "occluded": np.concatenate(occs, axis=0)[np.newaxis],
        "trackgroup": np.concatenate(groups, axis=0)[np.newaxis],
    }


def sample_queries_first(target_occluded, target_points, frames) -> dict:
    """One query per track at its first visible frame (tapnet ``sample_queries_first``); tracks never visible are
    dropped, the others keep their order.

    Returns ``video`` (1, T, H, W, 3), ``query_points`` (1, Q, 3) float64 (t, y, x), ``target_points``
    (1, Q, T, 2) (x, y) and ``occluded`` (1, Q, T). (tapnet fails on a video without any visible track; here Q is 0.)
    """
    target_occluded, target_points = _check_tracks(target_occluded, target_points)
    valid = np.sum(~target_occluded, axis=1) > 0
    target_points = target_points[valid, :]
    target_occluded = target_occluded[valid, :]
    query_points = []
    for i in range(target_points.shape[0]):
        index = np.where(~target_occluded[i])[0][0]
        x, y = target_points[i, index, 0], target_points[i, index, 1]
        query_points.append(np.array([index, y, x]))  # (t, y, x)
    query_points = np.stack(query_points, axis=0) if query_points else np.zeros((0, 3))
    return {
        "video": np.asarray(frames)[np.newaxis],
        "query_points": query_points[np.newaxis],
        "target_points": target_points[np.newaxis],
        "occluded": target_occluded[np.newaxis],
    }


def sample_queries(query_mode: str, target_occluded, target_points, frames,
                   query_stride: int = DEFAULT_QUERY_STRIDE) -> dict:
    """:func:`sample_queries_first` or :func:`sample_queries_strided` by tapnet's ``query_mode`` name."""
    if query_mode == "strided":
        return sample_queries_strided(target_occluded, target_points, frames, query_stride)
    if query_mode == "first":
        return sample_queries_first(target_occluded, target_points, frames)
    raise ValueError(f"Unknown query mode {query_mode!r}: expected one of {TAPVID_QUERY_MODES}")


# ----------------------------------------------------------------------------------------------------------------
# Frames: tapnet resize_video (= mediapy.resize_video) and the encoded-frame layout of TAP-Vid-Kinetics
# ----------------------------------------------------------------------------------------------------------------


def resize_video(video, output_size) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, h, w, 3) uint8 with ``PIL.Image.resize((w, h), LANCZOS)`` per frame, exactly as
    ``mediapy.resize_video`` (tapnet ``resize_video``) does; ``output_size`` is (h, w)."""
    from PIL import Image

    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
        raise ValueError(f"resize_video needs uint8 (T, H, W, 3) RGB frames, got {video.dtype} {video.shape}")
    height, width = (int(size) for size in output_size)
    if height < 1 or width < 1:
        raise ValueError(f"output_size must be (height, width) >= 1, got {tuple(output_size)}")
    resized = [np.asarray(Image.fromarray(frame).resize((width, height), resample=Image.Resampling.LANCZOS))
               for frame in video]
    return np.array(resized, dtype=np.uint8).reshape(len(video), height, width, 3)


def decode_frames(video) -> np.ndarray:
    """TAP-Vid ``video``: uint8 (T, H, W, 3), or a sequence of encoded JPEG/PNG frames (the Kinetics layout),
    decoded with PIL -> uint8 (T, H, W, 3)."""
    if isinstance(video, np.ndarray) and video.dtype != object:
        frames = video
    else:
        from PIL import Image

        if len(video) == 0:
            raise ValueError("TAP-Vid video has no frames")
        if not all(isinstance(frame, (bytes, bytearray, np.bytes_)) for frame in video):
            raise ValueError("TAP-Vid `video` must be a uint8 (T, H, W, 3) array or a list of encoded frames (bytes)")
        frames = np.array([np.asarray(Image.open(io.BytesIO(bytes(frame))).convert("RGB")) for frame in video])
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"TAP-Vid `video` must be uint8 (T, H, W, 3) RGB frames, got {frames.dtype} {frames.shape}")
    return frames


def _check_tapvid_example(num_frames: int, points: np.ndarray, occluded: np.ndarray) -> None:
    """A ValueError unless ``points`` are (N, T, 2), ``occluded`` (N, T) and T is the video's ``num_frames``."""
    if points.ndim != 3 or points.shape[-1] != 2 or occluded.shape != points.shape[:2]:
        raise ValueError(
            f"TAP-Vid points must be (N, T, 2) as (x, y) in [0, 1] and occluded (N, T), got {points.shape} and "
            f"{occluded.shape}"
        )
    if num_frames != points.shape[1]:
        raise ValueError(f"TAP-Vid video has {num_frames} frames but the tracks have {points.shape[1]}")


def prepare_tapvid_example(video, points, occluded, query_mode: str, resolution=TAPVID_RESOLUTION,
                           query_stride: int = DEFAULT_QUERY_STRIDE, in_place_points: bool = False) -> dict:
    """One pickle entry -> tapnet's evaluation example: frames resized to ``resolution`` (None keeps them), scaled
    to [-1, 1] float32; ``points`` (N, T, 2) in [0, 1] scaled by (W, H); queries sampled with ``query_mode``.

    ``in_place_points`` reproduces the Kinetics reader's ``target_points *= (W, H)`` (keeps the points' dtype);
    the DAVIS / RGB-Stacking readers multiply out of place (float64 for float32 points).
    """
    frames = decode_frames(video)
    points = np.asarray(points)
    occluded = np.asarray(occluded)
    _check_tapvid_example(frames.shape[0], points, occluded)
    if resolution is not None and tuple(int(size) for size in resolution) != frames.shape[1:3]:
        frames = resize_video(frames, resolution)
    frames = frames.astype(np.float32) / 255.0 * 2.0 - 1.0
    scale = np.array([frames.shape[2], frames.shape[1]])
    if in_place_points:
        points = np.array(points, copy=True)
        points *= scale
    else:
        points = points * scale
    return sample_queries(query_mode, occluded, points, frames, query_stride)


# ----------------------------------------------------------------------------------------------------------------
# Readers of the released pickles (restricted unpickling only)
# ----------------------------------------------------------------------------------------------------------------


def read_tapvid_pickle(path: str | os.PathLike) -> list[tuple[str, dict]]:
    """(name, entry) pairs of a TAP-Vid pickle: a dict ``{name: {video, points, occluded}}`` (DAVIS) or a list of
    such dicts (RGB-Stacking, Kinetics). Read with the restricted unpickler: a pickle that references anything but
    numpy arrays and builtin containers raises ``pickle.UnpicklingError`` and nothing in it runs."""
    from rep4d.training.readout_data import restricted_pickle_load

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TAP-Vid pickle {path} does not exist")
    data = restricted_pickle_load(path)
    if isinstance(data, dict):
        entries = [(str(name), entry) for name, entry in data.items()]
    elif isinstance(data, list):
        entries = [(f"video {index}", entry) for index, entry in enumerate(data)]
    else:
        raise ValueError(f"{path}: expected a dict or list of TAP-Vid videos, got {type(data).__name__}")
    for name, entry in entries:
        missing = [key for key in TAPVID_FIELDS if not isinstance(entry, dict) or key not in entry]
        if missing:
            raise ValueError(f"{path}: {name} lacks the TAP-Vid field(s) {missing} (expected video, points, occluded)")
    return entries


def iterate_tapvid_pickle(path, query_mode: str = "strided", resolution=TAPVID_RESOLUTION,
                          query_stride: int = DEFAULT_QUERY_STRIDE, in_place_points: bool = False,
                          ) -> Iterator[tuple[str, dict]]:
    """(name, example) for every video of a TAP-Vid pickle, prepared as tapnet's readers prepare it."""
    if query_mode not in TAPVID_QUERY_MODES:
        raise ValueError(f"Unknown query mode {query_mode!r}: expected one of {TAPVID_QUERY_MODES}")
    for name, entry in read_tapvid_pickle(path):
        yield name, prepare_tapvid_example(entry["video"], entry["points"], entry["occluded"], query_mode,
                                           resolution, query_stride, in_place_points)


def create_davis_dataset(davis_points_path, query_mode: str = "strided", resolution=TAPVID_RESOLUTION,
                         ) -> Iterator[dict]:
    """tapnet ``create_davis_dataset`` (without ``full_resolution``): yields ``{"davis": example}`` per video."""
    for _, example in iterate_tapvid_pickle(davis_points_path, query_mode, resolution):
        yield {"davis": example}


def create_rgb_stacking_dataset(robotics_points_path, query_mode: str = "strided", resolution=TAPVID_RESOLUTION,
                                ) -> Iterator[dict]:
    """tapnet ``create_rgb_stacking_dataset``: yields ``{"robotics": example}`` per video."""
    for _, example in iterate_tapvid_pickle(robotics_points_path, query_mode, resolution):
        yield {"robotics": example}


def create_kinetics_dataset(kinetics_path, query_mode: str = "strided", resolution=TAPVID_RESOLUTION,
                            ) -> Iterator[dict]:
    """tapnet ``create_kinetics_dataset``: ``kinetics_path`` is the folder of ``*_of_0010.pkl`` shards (or one
    shard); frames are JPEG bytes, decoded with PIL. Yields ``{"kinetics": example}`` per video."""
    path = Path(kinetics_path)
    shards = sorted(path.glob("*_of_0010.pkl")) if path.is_dir() else [path]
    if not shards:
        raise FileNotFoundError(f"{path} holds no TAP-Vid-Kinetics shards (*_of_0010.pkl)")
    for shard in shards:
        for _, example in iterate_tapvid_pickle(shard, query_mode, resolution, in_place_points=True):
            yield {"kinetics": example}


# ----------------------------------------------------------------------------------------------------------------
# Protocols: sampling and scoring always paired
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TapVidProtocol:
    """A TAP-Vid evaluation protocol. The scoring mode is derived from the query sampling, never given separately.

    Attributes:
        name: the protocol's name (``tapvid-first``, ``tapvid-strided``, ``4ds-clip``).
        query_sampling: ``first`` (first visible frame of each track), ``strided`` (every ``query_stride`` frames)
            or ``first-frame`` (the clip's first frame; tracks invisible there are dropped).
        resolution: (H, W) raster of the frames and coordinates (the metric's thresholds are pixels of it).
        num_frames: frames per clip, or None for the whole video.
        frame_stride: temporal subsampling before clips are cut (1: every frame).
        query_stride: the stride of ``strided`` sampling.
        reference: where the protocol comes from.
    """

    name: str
    query_sampling: str
    resolution: tuple[int, int] = TAPVID_RESOLUTION
    num_frames: int | None = None
    frame_stride: int = 1
    query_stride: int = DEFAULT_QUERY_STRIDE
    reference: str = ""

    def __post_init__(self):
        if self.query_sampling not in QUERY_SAMPLING_SCORING:
            raise ValueError(
                f"query_sampling must be one of {tuple(QUERY_SAMPLING_SCORING)}, got {self.query_sampling!r}"
            )
        if len(self.resolution) != 2 or min(self.resolution) < 1:
            raise ValueError(f"resolution must be (height, width) >= 1, got {self.resolution}")
        if self.num_frames is not None and self.num_frames < 2:
            raise ValueError(f"num_frames must be >= 2 (or None for the whole video), got {self.num_frames}")
        if self.frame_stride < 1 or self.query_stride < 1:
            raise ValueError(f"frame_stride and query_stride must be >= 1, got {self.frame_stride}, {self.query_stride}")

    @property
    def query_mode(self) -> str:
        """The scoring mode of ``compute_tapvid_metrics`` that matches this protocol's query sampling."""
        return QUERY_SAMPLING_SCORING[self.query_sampling]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "query_sampling": self.query_sampling,
            "query_mode": self.query_mode,
            "resolution": list(self.resolution),
            "num_frames": self.num_frames,
            "frame_stride": self.frame_stride,
            "query_stride": self.query_stride if self.query_sampling == "strided" else None,
            "reference": self.reference,
        }

    def sample_queries(self, target_occluded, target_points, frames) -> dict:
        """Queries of one video or clip, sampled as this protocol does."""
        if self.query_sampling == "first":
            return sample_queries_first(target_occluded, target_points, frames)
        if self.query_sampling == "strided":
            return sample_queries_strided(target_occluded, target_points, frames, self.query_stride)
        # first-frame: strided sampling with a stride beyond the clip keeps only frame 0.
        target_occluded = np.asarray(target_occluded)
        return sample_queries_strided(target_occluded, target_points, frames, max(1, target_occluded.shape[-1]))

    def clip_windows(self, num_frames: int) -> list[np.ndarray]:
        """Frame indices of each clip of a ``num_frames``-frame video."""
        subsampled = np.arange(0, num_frames, self.frame_stride)
        if self.num_frames is None:
            return [subsampled]
        count = len(subsampled) // self.num_frames
        return [subsampled[i * self.num_frames:(i + 1) * self.num_frames] for i in range(count)]

    def examples(self, video, points, occluded) -> list[dict]:
        """The evaluation examples of one video: ``video`` uint8 (T, H, W, 3) (or encoded frames), ``points``
        (N, T, 2) (x, y) normalised to [0, 1], ``occluded`` (N, T). Frames are resized to ``resolution`` (tapnet's
        Lanczos), scaled to [-1, 1], points to pixels of that raster; each clip's queries are sampled. A video
        shorter than one clip gives no example."""
        frames = decode_frames(video)
        points, occluded = np.asarray(points), np.asarray(occluded, dtype=bool)
        _check_tapvid_example(frames.shape[0], points, occluded)
        result = []
        for window in self.clip_windows(frames.shape[0]):
            clip = frames[window]
            if tuple(self.resolution) != clip.shape[1:3]:
                clip = resize_video(clip, self.resolution)
            clip = clip.astype(np.float32) / 255.0 * 2.0 - 1.0
            target = points[:, window] * np.array([clip.shape[2], clip.shape[1]])
            example = self.sample_queries(occluded[:, window], target, clip)
            example["frames"] = window
            result.append(example)
        return result

    def score(self, example: dict, pred_occluded, pred_tracks, get_trackwise_metrics: bool = False) -> dict:
        """``compute_tapvid_metrics`` of predictions for ``example``'s queries, with this protocol's scoring mode."""
        return compute_tapvid_metrics(
            example["query_points"], example["occluded"], example["target_points"], pred_occluded, pred_tracks,
            query_mode=self.query_mode, get_trackwise_metrics=get_trackwise_metrics,
        )


TAPVID_PROTOCOLS = {
    "tapvid-first": TapVidProtocol(
        "tapvid-first", "first",
        reference="TAP-Vid (Doersch et al. 2022); tapnet evaluation_datasets.py sample_queries_first, query_mode "
        "'first', whole videos at 256x256",
    ),
    "tapvid-strided": TapVidProtocol(
        "tapvid-strided", "strided",
        reference="TAP-Vid (Doersch et al. 2022); tapnet evaluation_datasets.py sample_queries_strided "
        "(query_stride 5), query_mode 'strided', whole videos at 256x256",
    ),
    "4ds-clip": TapVidProtocol(
        "4ds-clip", "first-frame", num_frames=16, frame_stride=4,
        reference="Scaling 4D Representations (arXiv 2412.15212) section 3.3 / appendix A.2: 16-frame clips at "
        "stride 4, queries from the first frame (tracks invisible there dropped)",
    ),
}
DEFAULT_TAPVID_PROTOCOL = "tapvid-first"


def get_tapvid_protocol(name: str | TapVidProtocol) -> TapVidProtocol:
    """The protocol named ``name`` (``tapvid-first``, ``tapvid-strided``, ``4ds-clip``)."""
    if isinstance(name, TapVidProtocol):
        return name
    if name not in TAPVID_PROTOCOLS:
        raise ValueError(f"unknown TAP-Vid protocol {name!r}; choose one of {', '.join(TAPVID_PROTOCOLS)}")
    return TAPVID_PROTOCOLS[name]


# ----------------------------------------------------------------------------------------------------------------
# Running a tracker under a protocol
# ----------------------------------------------------------------------------------------------------------------

# A tracker: (video (T, H, W, 3) float32 in [-1, 1], query_points (Q, 3) (t, y, x) pixels) ->
# (tracks (Q, T, 2) (x, y) pixels, occluded (Q, T) bool), all on the protocol's raster.
Tracker = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def stay_at_query_tracker(video: np.ndarray, query_points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The trivial baseline: every track stays at its query point and is always visible."""
    query_points = np.asarray(query_points, dtype=np.float64)
    tracks = np.broadcast_to(query_points[:, None, [2, 1]], (len(query_points), video.shape[0], 2)).copy()
    return tracks, np.zeros(tracks.shape[:2], dtype=bool)


def evaluate_tracker(protocol, videos, tracker: Tracker, baseline: Tracker | None = stay_at_query_tracker,
                     progress: bool = False) -> dict:
    """Score ``tracker`` on ``videos`` (an iterable of (name, {video, points, occluded}) as in the pickles, points
    normalised to [0, 1]) under ``protocol``.

    Returns ``protocol`` (its description), ``query_mode``, ``num_videos``, ``num_examples`` (clips with queries),
    ``num_queries``, ``skipped`` (videos/clips without any query), the mean over examples of every metric, and the
    same under ``baseline_`` for ``baseline``.
    """
    from tqdm.auto import tqdm

    protocol = get_tapvid_protocol(protocol)
    per_example, per_baseline = [], []
    num_videos, num_queries, skipped = 0, 0, []
    for name, entry in tqdm(videos, desc=f"TAP-Vid ({protocol.name})", unit="video", disable=not progress):
        num_videos += 1
        examples = protocol.examples(entry["video"], entry["points"], entry["occluded"])
        if not examples:
            skipped.append(f"{name} (shorter than one clip)")
        for example in examples:
            queries = example["query_points"][0]
            if len(queries) == 0:
                skipped.append(f"{name} frames {int(example['frames'][0])}.. (no query)")
                continue
            video = example["video"][0]
            tracks, occluded = tracker(video, queries)
            per_example.append(protocol.score(example, np.asarray(occluded, bool)[None], np.asarray(tracks)[None]))
            if baseline is not None:
                tracks, occluded = baseline(video, queries)
                per_baseline.append(protocol.score(example, np.asarray(occluded, bool)[None], np.asarray(tracks)[None]))
            num_queries += len(queries)
    if not per_example:
        raise ValueError(f"no video gave a TAP-Vid query under the {protocol.name} protocol ({len(skipped)} skipped)")
    result = {
        "protocol": protocol.describe(),
        "query_mode": protocol.query_mode,
        "num_videos": num_videos,
        "num_examples": len(per_example),
        "num_queries": num_queries,
        "skipped": skipped,
    }
    for key in TAPVID_METRIC_NAMES:
        result[key] = float(np.mean([scores[key][0] for scores in per_example]))
        if per_baseline:
            result[f"baseline_{key}"] = float(np.mean([scores[key][0] for scores in per_baseline]))
    return result


def infer_query_mode(query_points, occluded) -> str:
    """The scoring mode that matches how ``query_points`` (B, Q, 3) (t, y, x) were sampled from ``occluded``
    (B, Q, T): ``first`` when every query sits at its track's first visible frame (first-visible sampling), else
    ``strided`` (queries at other visible frames: every frame but the query frame is scored)."""
    query_points = np.asarray(query_points)
    occluded = np.asarray(occluded, dtype=bool)
    if occluded.shape[-1] == 0 or query_points.size == 0:
        return "first"
    first_visible = np.argmax(~occluded, axis=-1)
    query_time = np.round(query_points[..., 0]).astype(np.int64)
    return "first" if np.array_equal(query_time, first_visible) else "strided"


def _window_starts(num_frames: int, window: int) -> np.ndarray:
    if num_frames <= window:
        return np.zeros(1, dtype=np.int64)
    return np.array(list(range(0, num_frames - window, window - 1)) + [num_frames - window], dtype=np.int64)


def _chain_forward(track_window: Callable, order: np.ndarray, window: int, times: np.ndarray, positions: np.ndarray):
    """Forward chaining over the frames ``order`` (``times`` index into it, ``positions`` (Q, 2) are (y, x)).
    Returns tracks (Q, T, 2), occluded (Q, T) in ``order``'s time and each query's entry-window start."""
    num_frames, count = len(order), len(times)
    starts = _window_starts(num_frames, window)
    entry = np.searchsorted(starts, times, side="right") - 1  # the last window starting at or before the query
    current = np.concatenate([times[:, None].astype(np.float64), positions], axis=-1)
    tracks = np.zeros((count, num_frames, 2))
    occluded = np.zeros((count, num_frames), dtype=bool)
    for index, start in enumerate(starts):
        run = np.flatnonzero(entry <= index)
        if len(run) == 0:
            continue
        end = min(start + window, num_frames)
        queries = current[run].copy()
        queries[:, 0] -= start
        window_tracks, window_occluded = track_window(order[np.minimum(np.arange(start, start + window),
                                                                       num_frames - 1)], queries)
        for row_index, row in enumerate(run):
            # the entry window is used whole (the readout sees the query inside it); later windows after the
            # shared frame they were queried at
            first = start if entry[row] == index else int(current[row, 0]) + 1
            frames = np.arange(first, end)
            tracks[row, frames] = window_tracks[row_index, frames - start]
            occluded[row, frames] = window_occluded[row_index, frames - start]
        if index + 1 < len(starts):
            shared = starts[index + 1]
            current[run, 0] = shared
            current[run, 1] = tracks[run, shared, 1]
            current[run, 2] = tracks[run, shared, 0]
    return tracks, occluded, starts[entry]


def chained_window_tracks(track_window: Callable, num_frames: int, window: int, query_points: np.ndarray,
                          backward: bool) -> tuple[np.ndarray, np.ndarray]:
    """Track queries through a video longer (or shorter) than a fixed-length tracker's window.

    ``track_window(frame_indices, queries)`` tracks (Q, 3) queries (t relative to the window) over the frames
    ``frame_indices`` (length ``window``; indices repeat the last frame of a video shorter than the window, and run
    backwards in the backward pass) and returns ((Q, window, 2) (x, y), (Q, window) occluded).

    Windows start every ``window - 1`` frames (the last one ends at the last frame) and overlap by one frame. A
    query enters the last window that starts at or before its query frame, whose predictions are used whole (so a
    video that fits in one window is tracked exactly as the tracker would on its own); each later window is queried
    at the previous prediction for their shared first frame. With ``backward`` (``strided`` scoring evaluates the
    frames before the query), the frames before the entry window come from the same chaining on the time-reversed
    video, queried at the entry window's first frame.
    """
    query_points = np.asarray(query_points, dtype=np.float64)
    query_time = np.round(query_points[:, 0]).astype(np.int64)
    if len(query_time) and (query_time.min() < 0 or query_time.max() >= num_frames):
        raise ValueError(f"query frames must lie in [0, {num_frames - 1}], got [{query_time.min()}, {query_time.max()}]")
    if window < 2:
        raise ValueError(f"chained tracking needs a window of at least 2 frames, got {window}")
    frames = np.arange(num_frames)
    tracks, occluded, entry_start = _chain_forward(track_window, frames, window, query_time, query_points[:, 1:])
    rows = np.flatnonzero(entry_start > 0) if backward else np.zeros(0, dtype=np.int64)
    if len(rows):
        anchors = entry_start[rows]
        anchor_yx = tracks[rows, anchors][:, ::-1]
        back_tracks, back_occluded, _ = _chain_forward(track_window, frames[::-1], window, num_frames - 1 - anchors,
                                                       anchor_yx)
        back_tracks, back_occluded = back_tracks[:, ::-1], back_occluded[:, ::-1]
        for index, row in enumerate(rows):
            tracks[row, : anchors[index]] = back_tracks[index, : anchors[index]]
            occluded[row, : anchors[index]] = back_occluded[index, : anchors[index]]
    return tracks, occluded


def readout_tracker(model, protocol, batch_size: int = 64) -> Tracker:
    """A :data:`Tracker` running a point-tracking readout (``ReadoutForPointTracking``) on the protocol's frames:
    frames in [-1, 1] -> [0, 1] (and the backbone's mean/std), resized to the readout's input size (antialiased
    bilinear), queries scaled to it, windows of the readout's ``num_frames`` chained by
    :func:`chained_window_tracks` (``strided`` protocols also track backwards), tracks scaled back to the protocol's
    raster. ``batch_size`` queries go through the readout at once."""
    import torch

    from rep4d.training.finetune import pixel_normalisation
    from rep4d.training.video_data import resize_clip

    protocol = get_tapvid_protocol(protocol)
    model.eval()
    window = int(model.num_frames)
    height, width = (int(size) for size in model.image_size)
    mean, std = pixel_normalisation(model.config.backbone_config)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype

    def tracker(video: np.ndarray, query_points: np.ndarray):
        raster_h, raster_w = video.shape[1:3]
        pixels = torch.from_numpy(np.ascontiguousarray(video)).permute(0, 3, 1, 2).float()
        pixels = resize_clip((pixels + 1.0) / 2.0, height, width)
        if mean is not None:
            pixels = pixels - torch.tensor(mean).view(1, 3, 1, 1)
        if std is not None:
            pixels = pixels / torch.tensor(std).view(1, 3, 1, 1)
        to_model = np.array([1.0, height / raster_h, width / raster_w])

        def track_window(frames, queries):
            clip = pixels[torch.from_numpy(np.ascontiguousarray(frames))][None].to(device=device, dtype=dtype)
            scaled = queries * to_model
            scaled[:, 1] = np.clip(scaled[:, 1], 0, height)
            scaled[:, 2] = np.clip(scaled[:, 2], 0, width)
            outputs_tracks, outputs_occluded = [], []
            with torch.no_grad():
                features = model.extract_features(clip)
                for begin in range(0, len(scaled), batch_size):
                    chunk = torch.from_numpy(scaled[begin:begin + batch_size]).to(device=device, dtype=dtype)[None]
                    out = model(features=features, query_points=chunk)
                    outputs_tracks.append(out.tracks[0].double().cpu().numpy())
                    outputs_occluded.append(out.occluded[0].cpu().numpy())
            tracks = np.concatenate(outputs_tracks) * np.array([raster_w / width, raster_h / height])
            return tracks, np.concatenate(outputs_occluded).astype(bool)

        return chained_window_tracks(track_window, video.shape[0], window, query_points,
                                     backward=protocol.query_mode == "strided")

    return tracker


def tapvid_videos_from_source(source, indices=None) -> Iterator[tuple[str, dict]]:
    """(name, {video, points, occluded}) of the clips ``indices`` (default all) of a readout :class:`ClipSource`
    with point tracks: TAP-Vid pickles give their own normalised points; other sources' pixel tracks are divided by
    (W, H). The sources' own query points are ignored: the protocol samples the queries."""
    from rep4d.training.readout_data import TapVidPickleSource

    indices = range(len(source)) if indices is None else indices
    for index in indices:
        if isinstance(source, TapVidPickleSource):
            entry = source.videos[index]
            yield source.name(index), {key: entry[key] for key in TAPVID_FIELDS}
            continue
        clip = source.load(index)
        missing = [key for key in ("video", "tracks", "occluded") if key not in clip]
        if missing:
            raise ValueError(f"{source.name(index)} lacks the point-track field(s) {missing} a TAP-Vid protocol needs")
        video = np.asarray(clip["video"])
        height, width = video.shape[1:3]
        points = np.asarray(clip["tracks"], dtype=np.float64) / np.array([width, height])
        yield source.name(index), {"video": video, "points": points, "occluded": np.asarray(clip["occluded"], bool)}


__all__ = [
    "TAPVID_RESOLUTION",
    "TAPVID_PROTOCOLS",
    "TAPVID_METRIC_NAMES",
    "DEFAULT_TAPVID_PROTOCOL",
    "TapVidProtocol",
    "get_tapvid_protocol",
    "sample_queries_first",
    "sample_queries_strided",
    "sample_queries",
    "resize_video",
    "decode_frames",
    "prepare_tapvid_example",
    "read_tapvid_pickle",
    "iterate_tapvid_pickle",
    "create_davis_dataset",
    "create_kinetics_dataset",
    "create_rgb_stacking_dataset",
    "stay_at_query_tracker",
    "evaluate_tracker",
    "chained_window_tracks",
    "infer_query_mode",
    "readout_tracker",
    "tapvid_videos_from_source",
]
