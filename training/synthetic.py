"""Synthetic 4D videos with exact ground truth: moving textured shapes over a textured background, panning camera.

Every clip is rendered analytically (one ray per pixel centre, no anti-aliasing), so each field below is exact for
the pixels that were rendered:

=====================  =======================  ==========================================================
field                  dtype / shape            meaning
=====================  =======================  ==========================================================
``video``              uint8 (T, H, W, 3)       RGB frames
``depth``              float32 (T, H, W)        z-depth along the optical axis of each pixel's nearest surface
                                                (objects 4-10, background plane about 20: metres-like)
``segmentation``       uint8 (T, H, W)          0 = background, k = object k - 1 (extra field)
``query_points``       float32 (N, 3)           (t, y, x): query frame and pixel position of each point
``tracks``             float32 (N, T, 2)        (x, y) pixel position of each point in every frame
``occluded``           bool (N, T)              hidden behind a nearer surface or outside the frame
``track_depth``        float32 (N, T)           z-depth of the tracked surface point (extra field)
``point_object``       int32 (N,)               segmentation id the point lies on, 0 = background (extra)
``boxes``              float32 (O, T, 4)        (ymin, xmin, ymax, xmax) / (H, W, H, W), clipped to [0, 1]
``box_visible``        bool (O, T)              at least one pixel of the object is visible in the frame
``camera_rotation``    float32 (3, 3)           orientation of the last camera in the first camera's frame
``camera_translation`` float32 (3,)             position of the last camera in the first camera's frame (zeros
                                                unless ``max_camera_translation`` > 0)
``label``              int64 ()                 index into ``LABEL_NAMES``: dominant motion direction
=====================  =======================  ==========================================================

Conventions.

* Pixel coordinates are continuous with pixel ``(i, j)`` covering ``[j, j + 1) x [i, i + 1)``, so its centre is
  ``(x, y) = (j + 0.5, i + 0.5)`` and a normalised coordinate times the width (height) is a pixel coordinate, as in
  TAP-Vid. A point is outside the frame when ``x < 0 or x >= W or y < 0 or y >= H``.
* Camera: pinhole, focal length ``focal * W`` pixels, principal point at the image centre; camera axes x right,
  y down, z forward. The camera starts at the origin and pans (yaw about y, pitch about x) at constant rates; with
  ``max_camera_translation`` = m > 0 it also walks at a constant velocity to a final position uniform in
  ``m * [CAMERA_TRANSLATION_LOW, CAMERA_TRANSLATION_HIGH]`` (mostly forward, as in RealEstate10K), else it stays at
  the origin; ``static_objects`` then keeps the objects in place, so their parallax shows the translation. With ``camera_rotation = R`` and
  ``camera_translation = t`` a static point with coordinates ``X_first`` in the first camera has
  ``X_last = R.T @ (X_first - t)`` in the last one (``X_first = R @ X_last + t``: the relative pose ``[R | t]`` of
  RealEstate10K's readout); without translation the background moves by the homography ``K @ R.T @ inv(K)``.
* Query points lie on pixel centres of the query frame and are visible there. Objects are flat shapes parallel to
  the image plane that translate in 3D and spin in-plane; the background is a textured plane at depth 20.
* The label is the direction the objects travel in (``LABEL_NAMES``), drawn uniformly; every object moves that way
  (within +-30 degrees); the camera pans by at most a third of the object displacement, independently.
* Same seed (an int or a sequence of ints) -> bit-identical arrays.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rep4d.visualization import write_video

LABEL_NAMES = ["objects_move_right", "objects_move_left", "objects_move_down", "objects_move_up"]
# Unit image-plane direction (x right, y down) of each label.
LABEL_DIRECTIONS = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
SHAPE_KINDS = ["circle", "triangle", "square", "pentagon", "hexagon", "star"]
TEXTURE_KINDS = ["stripes", "checker", "waves", "dots"]

BACKGROUND_DEPTH = 20.0
# Final camera position / max_camera_translation, per axis (x right, y down, z forward).
CAMERA_TRANSLATION_LOW = (-0.5, -0.25, 0.25)
CAMERA_TRANSLATION_HIGH = (0.5, 0.25, 1.0)
OBJECT_DEPTH_RANGE = (4.0, 10.0)
CLIP_FIELDS = [
    "video", "depth", "segmentation", "query_points", "tracks", "occluded", "track_depth", "point_object",
    "boxes", "box_visible", "camera_rotation", "camera_translation", "label",
]


# ----------------------------------------------------------------------------------------------------------------
# Textures: smooth procedural colour fields of 2-D coordinates, so that any surface point has an exact colour.
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Texture:
    kind: str
    colors: np.ndarray  # (2, 3) in [0, 1]
    frequency: float  # cycles per coordinate unit
    angle: float
    phase: np.ndarray  # (2,)

    def __call__(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Colour in [0, 1] (..., 3) at texture coordinates ``u``, ``v``."""
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        a = (u * cos + v * sin) * self.frequency + self.phase[0]
        b = (-u * sin + v * cos) * self.frequency + self.phase[1]
        two_pi = 2.0 * math.pi
        if self.kind == "stripes":
            mix = 0.5 + 0.5 * np.sin(two_pi * a)
        elif self.kind == "checker":
            # Smoothed checkerboard: product of two sines through a soft sign, fully determined by (u, v).
            mix = 0.5 + 0.5 * np.tanh(3.0 * np.sin(two_pi * a) * np.sin(two_pi * b))
        elif self.kind == "waves":
            mix = 0.5 + 0.25 * np.sin(two_pi * a) + 0.25 * np.sin(two_pi * (0.7 * b + 0.5 * a))
        else:  # dots
            mix = np.clip(1.5 - 2.0 * np.hypot(np.sin(math.pi * a), np.sin(math.pi * b)), 0.0, 1.0)
        mix = mix[..., None]
        return self.colors[0] * (1.0 - mix) + self.colors[1] * mix


def random_texture(rng: np.random.Generator, frequency_range: tuple[float, float]) -> Texture:
    colors = rng.uniform(0.05, 0.95, size=(2, 3))
    # Keep the two colours distinguishable so that every texture has visible structure to track.
    while np.abs(colors[0] - colors[1]).sum() < 0.6:
        colors = rng.uniform(0.05, 0.95, size=(2, 3))
    return Texture(
        kind=TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))],
        colors=colors,
        frequency=float(rng.uniform(*frequency_range)),
        angle=float(rng.uniform(0, math.pi)),
        phase=rng.uniform(0, 1, size=2),
    )


# ----------------------------------------------------------------------------------------------------------------
# Shapes: star-shaped polygons with equally spaced vertex angles (or a circle) in local coordinates (radius 1).
# ----------------------------------------------------------------------------------------------------------------


def shape_vertices(kind: str) -> np.ndarray | None:
    """Polygon vertices (M, 2) in polar order with equal angular spacing; None for the circle."""
    if kind == "circle":
        return None
    if kind == "star":
        angles = np.arange(10) * (2 * math.pi / 10) - math.pi / 2
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
    else:
        count = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6}[kind]
        angles = np.arange(count) * (2 * math.pi / count) - math.pi / 2
        radii = np.ones(count)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=-1)


def inside_shape(kind: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether local coordinates (u, v) lie strictly inside the unit shape (vectorised)."""
    radius = np.hypot(u, v)
    vertices = shape_vertices(kind)
    if vertices is None:
        return radius < 1.0
    count = len(vertices)
    step = 2 * math.pi / count
    start = math.atan2(vertices[0, 1], vertices[0, 0])
    angle = np.mod(np.arctan2(v, u) - start, 2 * math.pi)
    segment = np.minimum((angle // step).astype(np.int64), count - 1)
    p1, p2 = vertices[segment], vertices[(segment + 1) % count]
    # Distance along the ray at `angle` to the edge p1 -> p2: cross(p1, p2) / cross(d, p2 - p1).
    direction_x, direction_y = np.cos(angle + start), np.sin(angle + start)
    edge = p2 - p1
    numerator = p1[..., 0] * p2[..., 1] - p1[..., 1] * p2[..., 0]
    denominator = direction_x * edge[..., 1] - direction_y * edge[..., 0]
    return radius < numerator / denominator


def outline_points(kind: str) -> np.ndarray:
    """Points whose convex hull contains the unit shape (polygon vertices or a circumscribed 64-gon)."""
    vertices = shape_vertices(kind)
    if vertices is not None:
        return vertices
    count = 64
    angles = np.arange(count) * (2 * math.pi / count)
    radius = 1.0 / math.cos(math.pi / count)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# Scene description
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class SceneObject:
    kind: str
    texture: Texture
    center0: np.ndarray  # (3,) world position at frame 0
    velocity: np.ndarray  # (3,) world units per frame
    size: float  # world radius
    aspect: np.ndarray  # (2,) anisotropic scale of the local axes
    angle0: float
    spin: float  # radians per frame

    def center(self, t: np.ndarray) -> np.ndarray:
        return self.center0 + np.asarray(t, dtype=np.float64)[..., None] * self.velocity

    def angle(self, t: np.ndarray) -> np.ndarray:
        return self.angle0 + np.asarray(t, dtype=np.float64) * self.spin


@dataclass
class Scene:
    num_frames: int
    height: int
    width: int
    focal: float  # pixels
    yaw_rate: float  # radians per frame
    pitch_rate: float
    background: Texture
    objects: list[SceneObject]
    label: int
    camera_velocity: np.ndarray | None = None  # (3,) world units per frame; None: the camera stays at the origin

    def camera_position(self, t) -> np.ndarray:
        """(..., 3) camera centre at ``t`` in world coordinates (zeros without ``camera_velocity``)."""
        t = np.asarray(t, dtype=np.float64)
        if self.camera_velocity is None:
            return np.zeros(t.shape + (3,))
        return t[..., None] * self.camera_velocity

    def camera_to_world(self, t) -> np.ndarray:
        """(..., 3, 3) orientation C_t of the camera (camera coordinates -> world coordinates)."""
        t = np.asarray(t, dtype=np.float64)
        yaw, pitch = self.yaw_rate * t, self.pitch_rate * t
        cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
        zero, one = np.zeros_like(yaw), np.ones_like(yaw)
        rot_y = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1),
                          np.stack([-sy, zero, cy], -1)], -2)
        rot_x = np.stack([np.stack([one, zero, zero], -1), np.stack([zero, cp, -sp], -1),
                          np.stack([zero, sp, cp], -1)], -2)
        return rot_y @ rot_x

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.focal, 0.0, self.width / 2.0], [0.0, self.focal, self.height / 2.0], [0.0, 0.0, 1.0]])

    def world_rays(self, frames: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """World directions (..., 3) of the rays through pixel positions (x, y) at frames (broadcastable)."""
        ray_x, ray_y = (x - self.width / 2.0) / self.focal, (y - self.height / 2.0) / self.focal
        rotation = self.camera_to_world(frames)
        # rotation @ (ray_x, ray_y, 1) written out: much faster than a broadcast einsum over every pixel.
        return np.stack(
            [rotation[..., row, 0] * ray_x + rotation[..., row, 1] * ray_y + rotation[..., row, 2] for row in range(3)],
            -1,
        )

    def surfaces(self, frames: np.ndarray, x: np.ndarray, y: np.ndarray):
        """Nearest surface along the rays through (x, y) at ``frames`` (all broadcast to one shape S).

        Returns (depth S, segmentation id S, colour S+(3,)). Depth is the camera z of the hit point; since the
        camera ray has z = 1, the ray parameter of a plane hit is the z-depth itself.
        """
        # Per-frame quantities (camera, object poses) are computed on the un-broadcast frame array.
        frames = np.asarray(frames, np.float64)
        x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
        shape = np.broadcast_shapes(frames.shape, x.shape)
        x, y = np.broadcast_to(x, shape), np.broadcast_to(y, shape)
        rays = np.broadcast_to(self.world_rays(frames, x, y), shape + (3,))
        # Rays start at the camera centre (the origin unless the camera translates).
        origin_x = origin_y = origin_z = 0.0
        if self.camera_velocity is not None:
            origin_x, origin_y, origin_z = np.moveaxis(self.camera_position(frames), -1, 0)
        # Background plane Z_world = BACKGROUND_DEPTH; texture coordinates in units of the image width at depth.
        depth = (BACKGROUND_DEPTH - origin_z) / rays[..., 2]
        scale = self.focal / (self.width * BACKGROUND_DEPTH)
        colour = self.background((origin_x + rays[..., 0] * depth) * scale, (origin_y + rays[..., 1] * depth) * scale)
        segmentation = np.zeros(shape, dtype=np.uint8)
        for index, obj in enumerate(self.objects):
            center = obj.center(frames)
            hit = (center[..., 2] - origin_z) / rays[..., 2]
            offset_x = origin_x + rays[..., 0] * hit - center[..., 0]
            offset_y = origin_y + rays[..., 1] * hit - center[..., 1]
            angle = obj.angle(frames)
            cos, sin = np.cos(angle), np.sin(angle)
            u = (cos * offset_x + sin * offset_y) / (obj.size * obj.aspect[0])
            v = (-sin * offset_x + cos * offset_y) / (obj.size * obj.aspect[1])
            # Every shape lies inside the unit circle: run the exact test only on those candidates.
            candidates = np.flatnonzero((u * u + v * v < 1.0) & (hit > 0) & (hit < depth))
            if candidates.size == 0:
                continue
            u_c, v_c = u.reshape(-1)[candidates], v.reshape(-1)[candidates]
            inside = inside_shape(obj.kind, u_c, v_c)
            covered, u_c, v_c = candidates[inside], u_c[inside], v_c[inside]
            depth.reshape(-1)[covered] = hit.reshape(-1)[covered]
            segmentation.reshape(-1)[covered] = index + 1
            colour.reshape(-1, 3)[covered] = obj.texture(u_c, v_c)
        return depth, segmentation, colour


def sample_scene(
    rng: np.random.Generator,
    num_frames: int,
    height: int,
    width: int,
    num_objects: int,
    focal_ratio: float = 1.0,
    max_camera_shift: float = 0.15,
    max_camera_translation: float = 0.0,
    static_objects: bool = False,
) -> Scene:
    focal = focal_ratio * width
    label = int(rng.integers(len(LABEL_NAMES)))
    steps = max(num_frames - 1, 1)
    # Image extent in normalised (tan) units: x in [-w/2f, w/2f], y in [-h/2f, h/2f].
    half_x, half_y = width / (2 * focal), height / (2 * focal)
    # Camera pan: total yaw/pitch so that the far background shifts by at most `max_camera_shift` image widths.
    yaw_rate = math.atan(rng.uniform(-max_camera_shift, max_camera_shift) * 2 * half_x) / steps
    pitch_rate = math.atan(rng.uniform(-max_camera_shift, max_camera_shift) * 2 * half_x) / steps
    background = random_texture(rng, (3.0, 10.0))
    depths = np.sort(rng.uniform(*OBJECT_DEPTH_RANGE, size=num_objects))[::-1]  # far to near, distinct
    direction = LABEL_DIRECTIONS[label]
    objects = []
    for depth in depths:
        kind = SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
        heading = math.atan2(direction[1], direction[0]) + rng.uniform(-math.pi / 6, math.pi / 6)
        travel = rng.uniform(0.45, 0.9) * 2 * half_x  # total image-plane travel over the clip (tan units)
        velocity_tan = travel / steps * np.array([math.cos(heading), math.sin(heading)])
        # Start so that the object crosses near the centre mid-clip.
        middle = rng.uniform(-0.5, 0.5, size=2) * np.array([half_x, half_y])
        depth_rate = depth * rng.uniform(-0.01, 0.01)
        if static_objects:  # after the draws: the scene is the moving one's, frozen at mid-clip
            velocity_tan, depth_rate = np.zeros(2), 0.0
        start_tan = middle - velocity_tan * steps / 2
        radius_tan = rng.uniform(0.12, 0.25) * 2 * half_x / 2
        objects.append(
            SceneObject(
                kind=kind,
                texture=random_texture(rng, (0.6, 1.6)),
                center0=np.array([start_tan[0] * depth, start_tan[1] * depth, depth]),
                velocity=np.array([velocity_tan[0] * depth, velocity_tan[1] * depth, depth_rate]),
                size=float(radius_tan * depth),
                aspect=rng.uniform(0.7, 1.0, size=2),
                angle0=float(rng.uniform(0, 2 * math.pi)),
                spin=float(rng.uniform(-0.08, 0.08)),
            )
        )
    camera_velocity = None
    if max_camera_translation > 0:  # drawn last: the scene's other draws stay those of a panning-only camera
        # A walking camera (RealEstate10K's walkthroughs): mostly forward, some sideways, a little up or down.
        final = max_camera_translation * rng.uniform(CAMERA_TRANSLATION_LOW, CAMERA_TRANSLATION_HIGH)
        camera_velocity = final / steps
    return Scene(num_frames, height, width, focal, yaw_rate, pitch_rate, background, objects, label, camera_velocity)


# ----------------------------------------------------------------------------------------------------------------
# Ground truth
# ----------------------------------------------------------------------------------------------------------------


def project(scene: Scene, points_world: np.ndarray, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (x, y) (..., 2) and z-depth (...) of world points (..., 3) seen by the camera at ``frames``."""
    world_to_camera = np.swapaxes(scene.camera_to_world(frames), -1, -2)
    if scene.camera_velocity is not None:
        points_world = points_world - scene.camera_position(frames)
    camera = np.einsum("...ij,...j->...i", world_to_camera, points_world)
    z = camera[..., 2]
    x = scene.focal * camera[..., 0] / z + scene.width / 2.0
    y = scene.focal * camera[..., 1] / z + scene.height / 2.0
    return np.stack([x, y], -1), z


def object_point_world(obj: SceneObject, local: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """World position (N, T, 3) of object-local offsets ``local`` (N, 2) (before rotation) at ``frames`` (T,)."""
    center = obj.center(frames)  # (T, 3)
    angle = obj.angle(frames)  # (T,)
    cos, sin = np.cos(angle)[None], np.sin(angle)[None]
    dx = cos * local[:, :1] - sin * local[:, 1:2]
    dy = sin * local[:, :1] + cos * local[:, 1:2]
    return np.stack([center[None, :, 0] + dx, center[None, :, 1] + dy, np.broadcast_to(center[None, :, 2], dx.shape)],
                    -1)


def sample_tracks(scene: Scene, rng: np.random.Generator, segmentation: np.ndarray, num_points: int,
                  object_fraction: float, query_mode: str):
    num_frames, height, width = segmentation.shape
    frames = np.arange(num_frames, dtype=np.float64)
    num_object_points = int(round(num_points * object_fraction)) if scene.objects else 0
    if query_mode == "first":
        query_frames = np.zeros(num_points, dtype=np.int64)
    else:
        query_frames = rng.integers(num_frames, size=num_points)
    wants_object = np.zeros(num_points, dtype=bool)
    wants_object[:num_object_points] = True
    rng.shuffle(wants_object)
    query_yx = np.zeros((num_points, 2), dtype=np.int64)
    point_object = np.zeros(num_points, dtype=np.int32)
    for index in range(num_points):
        labels = segmentation[query_frames[index]]
        candidates = np.flatnonzero(labels > 0) if wants_object[index] else np.flatnonzero(labels == 0)
        if candidates.size == 0:  # no object visible (or no background): fall back to any pixel
            candidates = np.arange(height * width)
        flat = int(candidates[rng.integers(candidates.size)])
        query_yx[index] = divmod(flat, width)
        point_object[index] = labels.flat[flat]
    query_x = query_yx[:, 1] + 0.5
    query_y = query_yx[:, 0] + 0.5
    tracks = np.zeros((num_points, num_frames, 2))
    track_depth = np.zeros((num_points, num_frames))
    rays = scene.world_rays(query_frames.astype(np.float64), query_x, query_y)  # (N, 3)
    origins = scene.camera_position(query_frames.astype(np.float64))  # (N, 3) camera centres at the query frames
    for object_id in np.unique(point_object):
        members = np.flatnonzero(point_object == object_id)
        ray, origin = rays[members], origins[members]
        if object_id == 0:
            # Static background point: intersect the plane once, then project into every frame.
            world = origin + ray * ((BACKGROUND_DEPTH - origin[:, 2:3]) / ray[:, 2:3])
            world = np.broadcast_to(world[:, None], (len(members), num_frames, 3))
        else:
            obj = scene.objects[object_id - 1]
            t_query = query_frames[members].astype(np.float64)
            center = obj.center(t_query)
            hit = origin + ray * ((center[:, 2:3] - origin[:, 2:3]) / ray[:, 2:3])
            offset = hit[:, :2] - center[:, :2]
            angle = obj.angle(t_query)
            cos, sin = np.cos(angle), np.sin(angle)
            local = np.stack([cos * offset[:, 0] + sin * offset[:, 1], -sin * offset[:, 0] + cos * offset[:, 1]], -1)
            world = object_point_world(obj, local, frames)
        tracks[members], track_depth[members] = project(scene, world, frames[None])
    # Occlusion: the nearest surface along the ray through the exact track position is another surface.
    x, y = tracks[..., 0], tracks[..., 1]
    outside = (x < 0) | (x >= width) | (y < 0) | (y >= height)
    _, front, _ = scene.surfaces(frames[None], x, y)
    occluded = outside | (front != point_object[:, None])
    query_points = np.stack([query_frames, query_y, query_x], -1)
    return query_points, tracks, occluded, track_depth, point_object


def object_boxes(scene: Scene, segmentation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    num_frames, height, width = segmentation.shape
    frames = np.arange(num_frames, dtype=np.float64)
    boxes = np.zeros((len(scene.objects), num_frames, 4))
    for index, obj in enumerate(scene.objects):
        local = outline_points(obj.kind) * obj.aspect * obj.size
        pixels, _ = project(scene, object_point_world(obj, local, frames), frames[None])  # (M, T, 2)
        low, high = pixels.min(0), pixels.max(0)  # (T, 2) as (x, y)
        boxes[index] = np.stack([low[:, 1] / height, low[:, 0] / width, high[:, 1] / height, high[:, 0] / width], -1)
    visible = np.stack([(segmentation == index + 1).any(axis=(1, 2)) for index in range(len(scene.objects))])
    return np.clip(boxes, 0.0, 1.0), visible.reshape(len(scene.objects), num_frames)


def generate_clip(
    seed: int | list[int] | tuple[int, ...] = 0,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    num_objects: int = 3,
    num_points: int = 64,
    object_point_fraction: float = 0.5,
    query_mode: str = "random",
    focal_ratio: float = 1.0,
    max_camera_shift: float = 0.15,
    max_camera_translation: float = 0.0,
    static_objects: bool = False,
) -> dict[str, np.ndarray]:
    """Render one clip and its ground truth (see the module docstring for every field).

    ``seed`` may be an int or a sequence of ints (e.g. ``(dataset_seed, clip_index)``). ``query_mode`` is
    ``"random"`` (query frame uniform per point) or ``"first"`` (every query on frame 0). ``max_camera_translation``
    (world units; objects are 4-10 away) lets the camera move as well as pan (0: it stays at the origin, and the
    clip is the same as without the option). ``static_objects`` keeps the objects in place (they still spin): with a
    translating camera their parallax against the background is what tells translation from rotation (a moving
    camera sees a single plane as a rotating one would, up to second-order perspective).
    """
    for name, value, low in (("num_frames", num_frames, 2), ("height", height, 8), ("width", width, 8),
                             ("num_objects", num_objects, 0), ("num_points", num_points, 0)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if query_mode not in ("random", "first"):
        raise ValueError(f"query_mode must be 'random' or 'first', got {query_mode!r}")
    if not 0.0 <= max_camera_translation <= OBJECT_DEPTH_RANGE[0] / 2:
        raise ValueError(
            f"max_camera_translation must be in [0, {OBJECT_DEPTH_RANGE[0] / 2}] (world units), got {max_camera_translation}"
        )
    if not 0.0 <= object_point_fraction <= 1.0:
        raise ValueError(f"object_point_fraction must be in [0, 1], got {object_point_fraction}")
    rng = np.random.default_rng(seed)
    scene = sample_scene(rng, num_frames, height, width, num_objects, focal_ratio, max_camera_shift,
                         max_camera_translation, bool(static_objects))
    frames = np.arange(num_frames, dtype=np.float64)[:, None, None]
    pixel_y = np.arange(height, dtype=np.float64)[None, :, None] + 0.5
    pixel_x = np.arange(width, dtype=np.float64)[None, None, :] + 0.5
    depth, segmentation, colour = scene.surfaces(frames, pixel_x, pixel_y)
    video = np.clip(np.rint(colour * 255.0), 0, 255).astype(np.uint8)
    query_points, tracks, occluded, track_depth, point_object = sample_tracks(
        scene, rng, segmentation, num_points, object_point_fraction, query_mode
    )
    boxes, box_visible = object_boxes(scene, segmentation)
    camera_rotation = scene.camera_to_world(float(num_frames - 1))
    return {
        "video": video,
        "depth": depth.astype(np.float32),
        "segmentation": segmentation,
        "query_points": query_points.astype(np.float32),
        "tracks": tracks.astype(np.float32),
        "occluded": occluded,
        "track_depth": track_depth.astype(np.float32),
        "point_object": point_object,
        "boxes": boxes.astype(np.float32),
        "box_visible": box_visible,
        "camera_rotation": camera_rotation.astype(np.float32),
        "camera_translation": scene.camera_position(float(num_frames - 1)).astype(np.float32),
        "label": np.int64(scene.label),
        "intrinsics": scene.intrinsics.astype(np.float32),
    }


# ----------------------------------------------------------------------------------------------------------------
# Writing a dataset to disk
# ----------------------------------------------------------------------------------------------------------------

METADATA_COLUMNS = ["file_name", "annotation", "label", "label_name", "num_frames", "height", "width"]


FAST_X264 = {"crf": "18", "preset": "veryfast", "threads": "1"}


def _write_clip(job: tuple) -> dict:
    output_dir, index, seed, options, fps, save_video_array = job
    clip = generate_clip(seed=(seed, index), **options)
    stem = f"clip_{index:05d}"
    write_video(Path(output_dir) / f"{stem}.mp4", clip["video"], fps=fps, options=FAST_X264)
    arrays = clip if save_video_array else {key: value for key, value in clip.items() if key != "video"}
    # np.savez of plain numeric arrays: no pickled objects, loadable with allow_pickle=False.
    temporary = Path(output_dir) / f".{stem}.tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, Path(output_dir) / f"{stem}.npz")
    label = int(clip["label"])
    return {
        "file_name": f"{stem}.mp4",
        "annotation": f"{stem}.npz",
        "label": label,
        "label_name": LABEL_NAMES[label],
        "num_frames": options["num_frames"],
        "height": options["height"],
        "width": options["width"],
    }


def write_dataset(
    output_dir: str | os.PathLike,
    num_clips: int,
    seed: int = 0,
    num_frames: int = 16,
    height: int = 64,
    width: int = 64,
    workers: int = 1,
    fps: float = 8.0,
    progress: bool = True,
    save_video_array: bool = False,
    **clip_options,
) -> Path:
    """Write ``num_clips`` clips (mp4 + npz), ``metadata.csv`` and a ``datasets`` dataset in ``dataset/``.

    Clip ``i`` uses the seed ``(seed, i)``, so the output does not depend on ``workers``. The saved dataset has
    columns ``video_path`` (absolute), ``annotation_path`` (absolute), ``label`` (ClassLabel over ``LABEL_NAMES``)
    and the metadata columns; load it with ``datasets.load_from_disk(output_dir / "dataset")``.
    """
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got height={height}, width={width}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    options = dict(num_frames=num_frames, height=height, width=width, **clip_options)
    generate_clip(seed=(seed, 0), **options)  # validate the options before starting workers
    jobs = [(str(output_dir), index, seed, options, fps, save_video_array) for index in range(num_clips)]
    from tqdm.auto import tqdm

    bar = tqdm(total=num_clips, desc="synth", unit="clip", disable=not progress)
    rows = []
    if workers == 1:
        for job in jobs:
            rows.append(_write_clip(job))
            bar.update()
    else:
        import multiprocessing

        with multiprocessing.get_context("spawn" if os.name == "nt" else "fork").Pool(workers) as pool:
            for row in pool.imap(_write_clip, jobs, chunksize=max(1, min(16, num_clips // (4 * workers)))):
                rows.append(row)
                bar.update()
    bar.close()
    with open(output_dir / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=METADATA_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    build_hf_dataset(output_dir, rows).save_to_disk(str(output_dir / "dataset"))
    return output_dir


def build_hf_dataset(output_dir: Path, rows: list[dict]):
    from datasets import ClassLabel, Dataset, Features, Value

    root = Path(output_dir).resolve()
    features = Features({
        "video_path": Value("string"),
        "annotation_path": Value("string"),
        "file_name": Value("string"),
        "annotation": Value("string"),
        "label": ClassLabel(names=LABEL_NAMES),
        "label_name": Value("string"),
        "num_frames": Value("int64"),
        "height": Value("int64"),
        "width": Value("int64"),
    })
    columns = {name: [row[name] for row in rows] for name in METADATA_COLUMNS}
    columns["video_path"] = [str(root / row["file_name"]) for row in rows]
    columns["annotation_path"] = [str(root / row["annotation"]) for row in rows]
    return Dataset.from_dict(columns, features=features)


def load_annotation(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a ``clip_XXXXX.npz`` written by :func:`write_dataset` (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
