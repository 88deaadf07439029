"""The twelve released checkpoints by name: download (resumable), convert and load them in one call.

``rep4d download NAME`` / ``rep4d convert NAME`` / :func:`from_release` work from one table, :data:`RELEASES`: for each
release name its file, official URL, family, the class that loads the converted folder and the processor class.

Cache layout (``cache_dir`` = ``--cache-dir`` > ``$REP4D_CACHE`` > ``$HF_HOME/rep4d``, i.e. ``~/.cache/huggingface/rep4d``
by default)::

    <cache>/downloads/<name>/<file>                    the released file, complete and checked
    <cache>/downloads/<name>/<file>.json               its record: URL, size in bytes, sha256
    <cache>/downloads/<name>/<file>.incomplete         an interrupted download (resumed with an HTTP Range request)
    <cache>/downloads/<name>/<file>.incomplete.json    the size and validator (ETag / Last-Modified) it was started with
    <cache>/converted/<name>/                          the converted Hugging Face folder (written atomically)

A tracking release (``moog-points``, ``moog-boxes``) is the MooG backbone file plus its head file: the backbone is
downloaded once, under ``downloads/moog/``, and shared.

Sizes and checksums: the exact byte size of the released files is **not known** in advance (the manifests only give
the float32 size of the arrays, which differs from the file size by the archive's headers and possibly by extra
arrays or another dtype), and no checksum is published. So a download is checked against the server's
``Content-Length`` (``Content-Range`` when resumed), then structurally (the zip directory of an ``.npz``, the header and
data size of a ``.safetensors``); its size and sha256 are recorded next to it and checked on later use. A release
entry whose ``size`` / ``sha256`` is set (e.g. by a fork that knows them) is checked against those too.

Network: plain HTTPS from ``storage.googleapis.com`` with the standard library (``urllib``; the usual ``https_proxy``
environment variables apply). These files are not on the Hugging Face Hub, so ``HF_HUB_OFFLINE=1`` does **not** block
them: a call that needs a file that is not in the cache downloads it. ``REP4D_RELEASES_URL`` (or ``base_url=``)
replaces the official base URL (the file name is appended), e.g. to point at a mirror or a local test server.
Without network the error is one line naming the URL: download the file by hand and pass it to ``rep4d convert FILE``.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from rep4d.cli import UserError

OFFICIAL_BASE_URL = "https://storage.googleapis.com/representations4d/checkpoints/"
BASE_URL_ENV = "REP4D_RELEASES_URL"
CACHE_ENV = "REP4D_CACHE"
INCOMPLETE_SUFFIX = ".incomplete"
CHUNK_SIZE = 1 << 20


class DownloadError(UserError, OSError):
    """A release could not be downloaded (no network, HTTP error, interrupted or truncated transfer, size or checksum
    mismatch). One line naming the URL and what to do. An ``OSError`` for Python callers; exit status 2 on the command
    line."""


@dataclass(frozen=True)
class ReleasedFile:
    """One released file: official URL, what is known of its size and checksum."""

    filename: str
    approx_size: str  # for people only: the representations4d README's figure, or the manifest's float32 estimate
    size: int | None = None  # exact bytes, None: unknown until the server's Content-Length is seen
    sha256: str | None = None  # None: no checksum published
    mirrors: tuple[str, ...] = ()  # other official URLs of the same file (named in error messages)

    def url(self, base_url: str | None = None) -> str:
        base = base_url or os.environ.get(BASE_URL_ENV) or OFFICIAL_BASE_URL
        return base.rstrip("/") + "/" + self.filename


@dataclass(frozen=True)
class Release:
    """A release name: its own file, the release whose file it also needs (a tracking head needs the backbone), the
    family (converter), and the classes :func:`from_release` loads the converted folder with."""

    name: str
    family: str  # 4ds | moog | rvm | omnivorous
    file: ReleasedFile
    description: str
    model_class: str = "AutoModel"  # a transformers Auto class, or a rep4d class (the family's task class)
    processor_class: str = "AutoVideoProcessor"
    needs: str | None = None  # name of the release whose file comes first in the conversion (the backbone)
    publish_name: str | None = None  # the matching entry of rep4d.publishing.RELEASES

    @property
    def method(self) -> str:
        """The converter method (rep4d.conversion.CONVERTERS key)."""
        return {"4ds": "fourds"}.get(self.family, self.family)


_MOOG_RUN = "ckpt_164335139"
_FLOAT32_NOTE = "float32 size of the arrays; the file size is not known"


def _release(name, family, filename, approx_size, description, **kwargs) -> Release:
    mirrors = kwargs.pop("mirrors", ())
    return Release(name, family, ReleasedFile(filename, approx_size, mirrors=mirrors), description, **kwargs)


def _omnivorous_mirror(filename: str) -> tuple[str, ...]:
    return (f"https://storage.googleapis.com/omnivorous/{filename}",)  # the URL the official notebook uses


RELEASES: dict[str, Release] = {
    release.name: release
    for release in [
        _release("4ds-b-dist-e", "4ds", "scaling4d_dist_b.npz", f"about 350 MB ({_FLOAT32_NOTE})",
                 "4DS-B-dist-e: ViT-B video MAE backbone distilled from 4DS-e", publish_name="4ds-b-dist-e"),
        _release("4ds-e", "4ds", "scaling4d_e.npz", f"about 15.2 GB ({_FLOAT32_NOTE})",
                 "4DS-e: ViT-e (3.8B parameters) video MAE backbone", publish_name="4ds-e"),
        _release("4ds-b-dist-e-depth", "4ds", "scaling4d_dist_b_depth.npz", f"about 420 MB ({_FLOAT32_NOTE})",
                 "4DS-B-dist-e backbone + ScanNet depth readout", model_class="AutoModelForDepthEstimation",
                 publish_name="4ds-b-dist-e-scannet-depth"),
        _release("moog", "moog", f"moog_ego4d_backbone_{_MOOG_RUN}.npz", "140 MB (README)",
                 "MooG backbone (Ego4D)", publish_name="moog-backbone"),
        _release("moog-points", "moog", f"moog_ego4d_point_track_head_{_MOOG_RUN}.npz",
                 f"about 45 MB ({_FLOAT32_NOTE}), plus the moog backbone",
                 "MooG backbone + released point-track head", model_class="MooGForPointTracking", needs="moog",
                 publish_name="moog-point-tracking"),
        _release("moog-boxes", "moog", f"moog_ego4d_box_track_head_{_MOOG_RUN}.npz",
                 f"about 46 MB ({_FLOAT32_NOTE}), plus the moog backbone",
                 "MooG backbone + released box-track head", model_class="MooGForBoxTracking", needs="moog",
                 publish_name="moog-box-tracking"),
        _release("rvm-s", "rvm", "pretrain_rvm_small16_256_204031069.npz", "270 MB (README)",
                 "RVM-S: recurrent video MAE, ViT-S/16 encoder", publish_name="rvm-s"),
        _release("rvm-b", "rvm", "pretrain_rvm_base16_256_203916225.npz", "641 MB (README)",
                 "RVM-B: recurrent video MAE, ViT-B/16 encoder", publish_name="rvm-b"),
        _release("rvm-l", "rvm", "pretrain_rvm_large16_256_202497301.npz", "1.6 GB (README)",
                 "RVM-L: recurrent video MAE, ViT-L/16 encoder", publish_name="rvm-l"),
        _release("rvm-h", "rvm", "pretrain_rvm_huge16_256_203854202.npz", "3.1 GB (README)",
                 "RVM-H: recurrent video MAE, ViT-H/16 encoder", publish_name="rvm-h"),
        _release("omnivorous-dinov2-b", "omnivorous", "omnivorous_dinov2-vit_b.safetensors",
                 "1.6 GB (README; the arrays read are 346 MB in float32)",
                 "Omnivorous DINOv2 student, ViT-B/14 (transformers' Dinov2WithRegistersModel)",
                 processor_class="AutoImageProcessor",
                 mirrors=_omnivorous_mirror("omnivorous_dinov2-vit_b.safetensors")),
        _release("frozen-dinov2-b", "omnivorous", "frozen_dinov2-vit_b.safetensors",
                 "1.6 GB (README; the arrays read are 346 MB in float32)",
                 "Frozen DINOv2 teacher, ViT-B/14 (transformers' Dinov2WithRegistersModel)",
                 processor_class="AutoImageProcessor",
                 mirrors=_omnivorous_mirror("frozen_dinov2-vit_b.safetensors")),
    ]
}


def get_release(name: str) -> Release:
    """The release called ``name``; an unknown name is a one-line error listing the known ones."""
    release = RELEASES.get(str(name).strip().lower())
    if release is None:
        raise UserError(f"unknown release {name!r}; known releases: {', '.join(RELEASES)}")
    return release


def release_files(release: Release) -> list[Release]:
    """The releases whose files the conversion of ``release`` reads, in order (backbone first)."""
    chain = [release]
    while chain[0].needs:
        chain.insert(0, RELEASES[chain[0].needs])
    return chain


# ------------------------------------------------------------------------------------------------------------------
# Cache
# ------------------------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$REP4D_CACHE``, else ``<HF_HOME>/rep4d`` (``HF_HOME`` as huggingface_hub resolves it)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "rep4d"
    from huggingface_hub import constants

    return Path(constants.HF_HOME).expanduser() / "rep4d"


def resolve_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def download_path(release: Release | str, cache_dir: str | os.PathLike | None = None) -> Path:
    release = get_release(release) if isinstance(release, str) else release
    return resolve_cache_dir(cache_dir) / "downloads" / release.name / release.file.filename


def converted_path(release: Release | str, cache_dir: str | os.PathLike | None = None) -> Path:
    release = get_release(release) if isinstance(release, str) else release
    return resolve_cache_dir(cache_dir) / "converted" / release.name


def _record_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def cached_file(release: Release | str, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The downloaded file if it is in the cache and has the size recorded when it was downloaded, else None."""
    path = download_path(release, cache_dir)
    if not path.is_file():
        return None
    record = _read_json(_record_path(path))
    if record is not None and record.get("size") not in (None, path.stat().st_size):
        return None
    return path


# ------------------------------------------------------------------------------------------------------------------
# Download
# ------------------------------------------------------------------------------------------------------------------


def _by_hand(url: str, filename: str, mirrors=()) -> str:
    also = f" (or {' / '.join(mirrors)})" if mirrors else ""
    return f"download it by hand from {url}{also} and run `rep4d convert {filename} --output DIR`"


def _offline_message(url: str, filename: str, reason: object, mirrors=()) -> str:
    return f"cannot reach {url} ({reason}): no network? {_by_hand(url, filename, mirrors)}"


def _parse_content_range(value: str | None) -> tuple[int, int | None] | None:
    """``"bytes 100-199/200"`` -> (100, 200); ``"bytes 100-199/*"`` -> (100, None)."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[6:].partition("/")
    start = span.split("-", 1)[0]
    try:
        return int(start), (int(total) if total.strip() not in ("", "*") else None)
    except ValueError:
        return None


def check_file_structure(path: Path, filename: str | None = None) -> None:
    """Cheap structural check of a complete download (``filename``, default ``path.name``, tells the format): an
    ``.npz`` must have a readable zip directory whose members lie inside the file; a ``.safetensors`` must be exactly
    8 + header + data bytes. Raises ValueError."""
    size = path.stat().st_size
    filename = filename or path.name
    if filename.endswith(".npz"):
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    if info.header_offset + info.compress_size > size:
                        raise ValueError(f"member {info.filename} ends past the end of the file")
        except zipfile.BadZipFile as error:
            raise ValueError(f"not a complete .npz (zip) archive: {error}") from error
    elif filename.endswith(".safetensors"):
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ValueError("not a .safetensors file: shorter than its 8-byte header length")
            header_len = int.from_bytes(head, "little")
            if header_len > size - 8:
                raise ValueError(f"not a complete .safetensors file: its header needs {header_len} bytes")
            try:
                header = json.loads(handle.read(header_len))
            except ValueError as error:
                raise ValueError(f"not a .safetensors file: unreadable header ({error})") from error
        end = max((entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"), default=0)
        if 8 + header_len + end != size:
            raise ValueError(f"not a complete .safetensors file: {size} bytes, its header describes "
                             f"{8 + header_len + end}")


def _hash_file(path: Path, hasher) -> None:
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_SIZE), b""):
            hasher.update(chunk)


def _human(count: int | None) -> str:
    if count is None:
        return "an unknown size"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


def download_url(
    url: str,
    destination: str | os.PathLike,
    expected_size: int | None = None,
    sha256: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
    mirrors: tuple[str, ...] = (),
) -> Path:
    """Stream ``url`` into ``destination`` atomically, resuming ``<destination>.incomplete`` with a Range request.

    The body goes to ``<destination>.incomplete`` (with a progress bar); an interrupted transfer is resumed from where
    it stopped (``Range: bytes=<have>-`` with ``If-Range`` so a changed file restarts; a 206 reply is appended, a 200
    reply restarts from zero), up to ``retries`` times while it makes progress, and is left in place for the next call
    otherwise. The complete file is checked (size against ``Content-Length`` / ``Content-Range`` and
    ``expected_size``, ``sha256``, structure) and only then renamed to ``destination``; a file that fails a check is
    deleted. Raises :class:`DownloadError` (one line naming the URL) on any failure.
    """
    destination = Path(destination)
    filename = destination.name
    partial = destination.with_name(filename + INCOMPLETE_SUFFIX)
    state_path = _record_path(partial)
    destination.parent.mkdir(parents=True, exist_ok=True)

    attempts_left = retries
    while True:
        before = partial.stat().st_size if partial.exists() else 0
        try:
            total = _fetch_into(url, partial, state_path, expected_size, progress, timeout, mirrors)
        except _Interrupted as interrupted:
            have = partial.stat().st_size if partial.exists() else 0
            if attempts_left > 0 and (have > before or interrupted.restart):
                attempts_left -= 1
                continue
            raise DownloadError(
                f"download of {url} stopped after {_human(have)} of {_human(interrupted.total)} "
                f"({interrupted.reason}); run the same command again to resume, or {_by_hand(url, filename, mirrors)}"
            ) from None
        break

    size = partial.stat().st_size
    problem = None
    if total is not None and size != total:
        problem = f"{size} bytes received, the server announced {total}"
    elif expected_size is not None and size != expected_size:
        problem = f"{size} bytes, expected {expected_size}"
    digest = None
    if problem is None:
        hasher = hashlib.sha256()
        _hash_file(partial, hasher)
        digest = hasher.hexdigest()
        if sha256 is not None and digest != sha256.lower():
            problem = f"sha256 {digest}, expected {sha256.lower()}"
    if problem is None:
        try:
            check_file_structure(partial, filename)
        except ValueError as error:
            problem = str(error)
    if problem is not None:
        partial.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        raise DownloadError(f"refusing the download of {url}: {problem}; the partial file was deleted: run the "
                            f"same command again, or {_by_hand(url, filename, mirrors)}")
    _write_json_atomic(_record_path(destination), {"url": url, "size": size, "sha256": digest})
    os.replace(partial, destination)
    state_path.unlink(missing_ok=True)
    return destination


class _Interrupted(Exception):
    """The transfer stopped early (``restart``: the partial file was discarded and the download starts again)."""

    def __init__(self, reason: str, total: int | None, restart: bool = False):
        super().__init__(reason)
        self.reason, self.total, self.restart = reason, total, restart


def _fetch_into(url, partial: Path, state_path: Path, expected_size, progress, timeout, mirrors) -> int | None:
    """One HTTP request appending to ``partial``; returns the total size announced by the server (or None).

    Raises _Interrupted when the body stops early (the caller retries or reports), DownloadError otherwise.
    """
    from rep4d import __version__

    filename = partial.name[: -len(INCOMPLETE_SUFFIX)]
    state = _read_json(state_path) or {}
    have = partial.stat().st_size if partial.exists() else 0
    if have and state.get("url") != url:  # bytes of unknown origin (or from another URL): start again
        partial.unlink()
        have = 0
    headers = {"User-Agent": f"rep4d/{__version__}", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = state.get("etag") or state.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to send: complete already, or the file shrank
            error.close()
            if state.get("total") == have:
                return have
            partial.unlink(missing_ok=True)
            state_path.unlink(missing_ok=True)
            raise _Interrupted("the server refused the resume range", state.get("total"), restart=True) from None
        raise DownloadError(f"HTTP {error.code} {error.reason} for {url}: {_by_hand(url, filename, mirrors)}") \
            from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise DownloadError(_offline_message(url, filename, reason, mirrors)) from None

    with response:
        content_length = response.headers.get("Content-Length")
        length = int(content_length) if content_length and content_length.isdigit() else None
        if response.status == 206 and have:
            parsed = _parse_content_range(response.headers.get("Content-Range"))
            if parsed is None or parsed[0] != have:
                partial.unlink(missing_ok=True)
                state_path.unlink(missing_ok=True)
                raise _Interrupted("the server answered the resume with another range",
                                   parsed[1] if parsed else None, restart=True)
            total = parsed[1] if parsed[1] is not None else state.get("total")
            mode = "ab"
        elif response.status in (200, 206):
            # 200 to a Range request: the server ignores ranges (or the file changed, If-Range): restart from zero.
            have, mode = 0, "wb"
            parsed = _parse_content_range(response.headers.get("Content-Range")) if response.status == 206 else None
            total = parsed[1] if parsed else length
        else:
            raise DownloadError(f"unexpected HTTP {response.status} for {url}: {_by_hand(url, filename, mirrors)}")
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(f"refusing {url}: the server announces {total} bytes, expected {expected_size}; "
                                f"{_by_hand(url, filename, mirrors)}")
        _write_json_atomic(state_path, {
            "url": url, "total": total,
            "etag": response.headers.get("ETag"), "last_modified": response.headers.get("Last-Modified"),
        })
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024, desc=filename)
        try:
            with open(partial, mode) as handle:
                while True:
                    try:
                        chunk = response.read(CHUNK_SIZE)
                    except (http.client.IncompleteRead, OSError, socket.timeout) as error:
                        raise _Interrupted(f"connection lost: {type(error).__name__}", total) from None
                    if not chunk:
                        break
                    handle.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    received = partial.stat().st_size
    if total is not None and received < total:
        raise _Interrupted(f"the server sent fewer bytes than announced ({received} of {total})", total)
    return total


def download(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    retries: int = 3,
    timeout: float = 60.0,
) -> list[Path]:
    """Download the file(s) release ``name`` needs into the cache (nothing is fetched for a file already there).

    Returns their paths, backbone first (``moog-points`` -> [moog backbone, point head]).
    """
    paths = []
    for release in release_files(get_release(name)):
        path = cached_file(release, cache_dir)
        if path is None:
            path = download_url(
                release.file.url(base_url), download_path(release, cache_dir), expected_size=release.file.size,
                sha256=release.file.sha256, progress=progress, retries=retries, timeout=timeout,
                mirrors=release.file.mirrors,
            )
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------------------------------
# Conversion and loading
# ------------------------------------------------------------------------------------------------------------------


def _register_classes() -> None:
    import rep4d

    rep4d.register()  # the Auto classes: the `rep4d` command line imports rep4d without registering them


def convert_release(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
    progress: bool = True,
    max_shard_size: str | int = "5GB",
    **overrides,
) -> Path:
    """Download (if needed) and convert release ``name``; returns the converted folder.

    Without ``output`` the folder is ``<cache>/converted/<name>/``: returned at once when it exists (nothing is
    downloaded or read), else written atomically (temporary folder + rename). With ``output`` the conversion goes
    there (``overwrite`` and config ``overrides`` as ``rep4d convert``).
    """
    release = get_release(name)
    target = Path(output) if output is not None else converted_path(release, cache_dir)
    if output is None:
        if overrides:
            raise ValueError(f"config overrides ({', '.join(overrides)}) change the model: pass --output DIR to "
                             f"convert release {release.name} with them outside the cache")
        if (target / "config.json").is_file():
            return target
    paths = download(release.name, cache_dir, base_url=base_url, progress=progress)
    from rep4d.conversion import convert_checkpoint

    if output is None and target.exists():  # a folder without config.json: a leftover, not a conversion
        shutil.rmtree(target)
    try:
        convert_checkpoint(paths, target, method=release.method, overwrite=overwrite, progress=progress,
                           max_shard_size=max_shard_size, **overrides)
    except (FileExistsError, OSError):
        if output is None and (target / "config.json").is_file():  # another process converted it meanwhile
            return target
        raise
    return target


def _resolve_class(name: str):
    import transformers

    import rep4d

    return getattr(transformers, name) if name.startswith("Auto") else getattr(rep4d, name)


def from_release(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    **from_pretrained_kwargs,
):
    """``(model, processor)`` of release ``name``: downloaded and converted into the cache on first use.

    The model is loaded with the release's class (``AutoModel``, ``AutoModelForDepthEstimation`` for the depth
    release, ``MooGForPointTracking`` / ``MooGForBoxTracking`` for the MooG heads) in eval mode, the processor with
    ``AutoVideoProcessor`` (``AutoImageProcessor`` for the Omnivorous DINOv2 image models)::

        model, processor = rep4d.releases.from_release("4ds-b-dist-e")
    """
    release = get_release(name)
    folder = convert_release(release.name, cache_dir, base_url=base_url, progress=progress)
    _register_classes()
    model = _resolve_class(release.model_class).from_pretrained(folder, **from_pretrained_kwargs).eval()
    processor = _resolve_class(release.processor_class).from_pretrained(folder)
    return model, processor


@dataclass
class ReleaseStatus:
    name: str
    filename: str
    url: str
    approx_size: str
    downloaded: list[str] = field(default_factory=list)
    converted: str | None = None


def release_status(cache_dir: str | os.PathLike | None = None, base_url: str | None = None) -> list[ReleaseStatus]:
    """What the cache holds for every release (for ``rep4d download --list``)."""
    rows = []
    for release in RELEASES.values():
        downloaded = [str(path) for r in release_files(release) if (path := cached_file(r, cache_dir)) is not None]
        folder = converted_path(release, cache_dir)
        rows.append(ReleaseStatus(release.name, release.file.filename, release.file.url(base_url),
                                  release.file.approx_size, downloaded,
                                  str(folder) if (folder / "config.json").is_file() else None))
    return rows
