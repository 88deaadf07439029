"""Released checkpoints by name (rep4d.releases, `rep4d download NAME`, `rep4d convert NAME`), tested against a local
HTTP server on 127.0.0.1 that serves tiny fixture checkpoints under the released file names."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from rep4d import releases
from rep4d.cli import main
from rep4d.releases import RELEASES, DownloadError

from testing_utils import FIXTURES

TINY_4DS = FIXTURES / "4ds" / "tiny_backbone" / "params.npz"  # already in the released key layout
TINY_MOOG = FIXTURES / "moog" / "tiny_points"
TINY_VIT = FIXTURES / "omnivorous" / "tiny_vit" / "params.safetensors"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass

    def do_GET(self):
        server = self.server
        name = self.path.lstrip("/")
        server.requests.append({"file": name, "range": self.headers.get("Range"),
                                "if_range": self.headers.get("If-Range")})
        data = server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start, status = 0, 200
        requested = self.headers.get("Range")
        if requested and not server.ignore_range:
            start = int(requested.split("=", 1)[1].split("-", 1)[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("ETag", '"v1"')
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        end = len(data)
        if name in server.cut_next:  # this response stops after that many body bytes, then the connection closes
            end = min(end, start + server.cut_next.pop(name))
        if name in server.truncate_at:  # every response stops there (announcing the full length)
            end = min(end, server.truncate_at[name])
        self.wfile.write(data[start:end])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server(monkeypatch):
    """A loopback HTTP server with Range support; ``REP4D_RELEASES_URL`` points the releases at it."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files = {
        RELEASES["4ds-b-dist-e"].file.filename: TINY_4DS.read_bytes(),
        RELEASES["moog"].file.filename: (TINY_MOOG / "backbone_params.npz").read_bytes(),
        RELEASES["moog-points"].file.filename: (TINY_MOOG / "point_head_params.npz").read_bytes(),
        RELEASES["frozen-dinov2-b"].file.filename: TINY_VIT.read_bytes(),
    }
    httpd.requests, httpd.cut_next, httpd.truncate_at, httpd.ignore_range = [], {}, {}, False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setenv("REP4D_RELEASES_URL", f"http://127.0.0.1:{httpd.server_address[1]}/")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # not the Hub: must not block these downloads
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ------------------------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------------------------


def test_table_names_urls_and_manifests(monkeypatch):
    monkeypatch.delenv("REP4D_RELEASES_URL", raising=False)
    from rep4d.publishing import MANIFESTS_DIR
    from rep4d.publishing import RELEASES as PUBLISHED

    assert list(RELEASES) == [
        "4ds-b-dist-e", "4ds-e", "4ds-b-dist-e-depth", "moog", "moog-points", "moog-boxes",
        "rvm-s", "rvm-b", "rvm-l", "rvm-h", "omnivorous-dinov2-b", "frozen-dinov2-b",
    ]
    manifests = {json.loads(path.read_text())["file"] for path in MANIFESTS_DIR.rglob("*.json")}
    for release in RELEASES.values():
        assert release.file.filename in manifests, release.name  # every file name is a released one
        assert release.file.url(base_url=None).startswith("https://storage.googleapis.com/")
        assert release.file.size is None and release.file.sha256 is None  # not published: checked, not invented
        files = tuple(r.file.filename for r in releases.release_files(release))
        if release.publish_name is not None:
            assert files == PUBLISHED[release.publish_name].files, release.name
    assert [r.name for r in releases.release_files(RELEASES["moog-boxes"])] == ["moog", "moog-boxes"]
    assert RELEASES["rvm-b"].file.url("http://mirror/x/") == "http://mirror/x/pretrain_rvm_base16_256_203916225.npz"


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("REP4D_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert releases.default_cache_dir() == tmp_path / "hf" / "rep4d"
    monkeypatch.setenv("REP4D_CACHE", str(tmp_path / "mine"))
    assert releases.default_cache_dir() == tmp_path / "mine"
    assert releases.resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    assert releases.download_path("rvm-s", tmp_path) == (
        tmp_path / "downloads" / "rvm-s" / "pretrain_rvm_small16_256_204031069.npz")


def test_unknown_name_is_one_line_error(tmp_path, capsys):
    assert main(["download", "4ds-x", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown release '4ds-x'" in err and "4ds-b-dist-e" in err
    assert main(["convert", "rvm-z", "--cache-dir", str(tmp_path)]) == 2
    assert "unknown release 'rvm-z'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------------------------
# Download, resume, refusal
# ------------------------------------------------------------------------------------------------------------------


def test_download_convert_from_release_and_cache(server, tmp_path, monkeypatch):
    name, filename = "4ds-b-dist-e", RELEASES["4ds-b-dist-e"].file.filename
    model, processor = releases.from_release(name, cache_dir=tmp_path, progress=False)
    assert type(model).__name__ == "FourDSModel" and type(processor).__name__ == "FourDSVideoProcessor"
    assert not model.training
    downloaded = tmp_path / "downloads" / name / filename
    assert downloaded.read_bytes() == TINY_4DS.read_bytes()
    record = json.loads((tmp_path / "downloads" / name / f"{filename}.json").read_text())
    assert record["size"] == TINY_4DS.stat().st_size and len(record["sha256"]) == 64
    folder = tmp_path / "converted" / name
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()
    assert _leftovers(tmp_path) == sorted([
        "converted/4ds-b-dist-e/config.json", "converted/4ds-b-dist-e/model.safetensors",
        "converted/4ds-b-dist-e/video_preprocessor_config.json",
        f"downloads/4ds-b-dist-e/{filename}", f"downloads/4ds-b-dist-e/{filename}.json",
    ])  # no .incomplete / temporary folder left behind
    with torch.no_grad():  # the converted weights are the fixture's
        features = model.get_video_features(torch.rand(1, 4, 3, 32, 32)).features
    assert features.shape == (1, 4, 16, 64)
    assert len(server.requests) == 1

    # Second call: served from the cache at once, no request, nothing re-read or re-converted.
    import rep4d.conversion

    def fail(*args, **kwargs):
        raise AssertionError("the cached release was read again")

    monkeypatch.setattr(rep4d.conversion, "convert_checkpoint", fail)
    monkeypatch.setattr(rep4d.conversion, "open_checkpoint", fail)
    start = time.perf_counter()
    assert releases.convert_release(name, cache_dir=tmp_path) == folder
    assert time.perf_counter() - start < 1.0
    assert releases.download(name, cache_dir=tmp_path) == [downloaded]
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_range(server, tmp_path):
    name = "4ds-b-dist-e"
    filename = RELEASES[name].file.filename
    data = server.files[filename]
    half = len(data) // 2
    server.cut_next[filename] = half
    with pytest.raises(DownloadError, match="run the same command again to resume") as error:
        releases.download(name, cache_dir=tmp_path, progress=False, retries=0)
    assert "\n" not in str(error.value) and "http://127.0.0.1" in str(error.value)
    partial = tmp_path / "downloads" / name / f"{filename}.incomplete"
    assert partial.stat().st_size == half and not (tmp_path / "downloads" / name / filename).exists()

    [path] = releases.download(name, cache_dir=tmp_path, progress=False)
    assert server.requests[-1]["range"] == f"bytes={half}-" and server.requests[-1]["if_range"] == '"v1"'
    assert path.read_bytes() == data and not partial.exists()


def test_cut_download_resumes_within_one_call(server, tmp_path):
    filename = RELEASES["4ds-b-dist-e"].file.filename
    server.cut_next[filename] = 1000
    [path] = releases.download("4ds-b-dist-e", cache_dir=tmp_path, progress=False)
    assert [r["range"] for r in server.requests] == [None, "bytes=1000-"]
    assert path.read_bytes() == server.files[filename]


def test_convert_name_with_output_and_dry_run(server, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", "4ds-b-dist-e", "--cache-dir", str(tmp_path / "cache"), "-o", str(out), "--quiet"]) == 0
    assert (out / "config.json").is_file() and not (tmp_path / "cache" / "converted").exists()
    assert main(["convert", "4ds-b-dist-e", "--cache-dir", str(tmp_path / "cache"), "--dry-run", "--quiet"]) == 0
    assert "recognised: 4DS backbone" in capsys.readouterr().out
    assert main(["convert", "4ds-b-dist-e", "--cache-dir", str(tmp_path / "cache"), "--preset", "b"]) == 2
    assert len(server.requests) == 1  # the second and third calls used the downloaded file


def test_server_ignoring_range_restarts(server, tmp_path):
    filename = RELEASES["4ds-b-dist-e"].file.filename
    server.cut_next[filename] = 5000
    server.ignore_range = True  # answers the resume with 200 and the whole file
    [path] = releases.download("4ds-b-dist-e", cache_dir=tmp_path, progress=False)
    assert server.requests[-1]["range"] == "bytes=5000-"
    assert path.read_bytes() == server.files[filename]


def test_truncated_transfer_refused_nothing_in_place(server, tmp_path, capsys):
    filename = RELEASES["4ds-b-dist-e"].file.filename
    server.truncate_at[filename] = 10_000  # announces the full length, never sends past 10 kB
    assert main(["convert", "4ds-b-dist-e", "--cache-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: download of http://127.0.0.1") and "\n" not in err
    assert "fewer bytes than announced" in err
    assert not (tmp_path / "downloads" / "4ds-b-dist-e" / filename).exists()
    assert not (tmp_path / "converted").exists()


def test_truncated_file_refused_by_structure_check(server, tmp_path):
    filename = RELEASES["4ds-b-dist-e"].file.filename
    server.files[filename] = server.files[filename][:-4096]  # a short file served with its own (short) length
    with pytest.raises(DownloadError, match="refusing the download .*not a complete .npz"):
        releases.convert_release("4ds-b-dist-e", cache_dir=tmp_path, progress=False)
    assert _leftovers(tmp_path) == []  # the partial file was deleted too


def test_known_size_and_checksum_are_checked(server, tmp_path, monkeypatch):
    release = RELEASES["4ds-b-dist-e"]
    data = server.files[release.file.filename]
    wrong_sum = dataclasses.replace(release, file=dataclasses.replace(release.file, sha256="0" * 64))
    monkeypatch.setitem(RELEASES, release.name, wrong_sum)
    with pytest.raises(DownloadError, match="sha256 .* expected 0000"):
        releases.download(release.name, cache_dir=tmp_path, progress=False)
    assert _leftovers(tmp_path) == []
    wrong_size = dataclasses.replace(release, file=dataclasses.replace(release.file, size=len(data) + 1))
    monkeypatch.setitem(RELEASES, release.name, wrong_size)
    with pytest.raises(DownloadError, match=f"announces {len(data)} bytes, expected {len(data) + 1}"):
        releases.download(release.name, cache_dir=tmp_path, progress=False)
    assert not (tmp_path / "downloads" / release.name / release.file.filename).exists()


def test_http_error_and_no_network(server, tmp_path, capsys, monkeypatch):
    with pytest.raises(DownloadError, match="HTTP 404 .*download it by hand"):
        releases.download("rvm-s", cache_dir=tmp_path, progress=False)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    monkeypatch.setenv("REP4D_RELEASES_URL", url)
    assert main(["download", "4ds-b-dist-e", "--cache-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot reach {url}scaling4d_dist_b.npz" in err
    assert "rep4d convert scaling4d_dist_b.npz" in err
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------------------------
# Multi-file and image releases through the command line
# ------------------------------------------------------------------------------------------------------------------


def test_tracking_release_shares_the_backbone_file(server, tmp_path, capsys):
    assert main(["download", "moog-points", "--cache-dir", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "downloads" / "moog" / RELEASES["moog"].file.filename),
                       str(tmp_path / "downloads" / "moog-points" / RELEASES["moog-points"].file.filename)]
    model, processor = releases.from_release("moog-points", cache_dir=tmp_path, progress=False)
    assert type(model).__name__ == "MooGForPointTracking" and type(processor).__name__ == "MooGVideoProcessor"
    assert len(server.requests) == 2  # the conversion reused both downloads


def test_convert_name_cli_and_image_release(server, tmp_path, capsys):
    assert main(["convert", "frozen-dinov2-b", "--cache-dir", str(tmp_path), "--quiet"]) == 0
    folder = tmp_path / "converted" / "frozen-dinov2-b"
    assert str(folder) in capsys.readouterr().out
    assert (folder / "config.json").is_file() and (folder / "preprocessor_config.json").is_file()
    model, processor = releases.from_release("frozen-dinov2-b", cache_dir=tmp_path)
    assert type(model).__name__ == "Dinov2WithRegistersModel" and "ImageProcessor" in type(processor).__name__
    assert main(["download", "--list", "--json", "--cache-dir", str(tmp_path)]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["frozen-dinov2-b"]["converted"] == str(folder) and rows["rvm-s"]["downloaded"] == []
    assert len(server.requests) == 1
