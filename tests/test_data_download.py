"""Downloads: one-line errors offline, checksum verification, resuming a partial file."""

from __future__ import annotations

import hashlib
import io
import urllib.error

import pytest

from medclf.data import DataError, download, prepare
from medclf.config.params import load_params


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes, status: int):
        super().__init__(payload)
        self.status = status
        self.headers = {"Content-Length": str(len(payload))}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_missing_data_says_what_to_download_and_where(tmp_path):
    params = load_params("malaria", data_root=str(tmp_path / "cells"),
                         overrides={"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")})
    with pytest.raises(DataError) as info:
        prepare(params)
    message = str(info.value)
    assert "\n" not in message
    assert "cell_images.zip" in message and str(tmp_path / "cells") in message and "--download" in message


def test_offline_download_fails_in_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    params = load_params("pneumoniamnist", data_root=str(tmp_path / "p.npz"), overrides={
        "download": True, "cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out")})
    with pytest.raises(DataError, match="cannot download .*offline") as info:
        prepare(params)
    assert "\n" not in str(info.value)


def test_resume_and_checksum(tmp_path, monkeypatch):
    payload = bytes(range(256)) * 40
    requests = []

    def server(request, timeout):
        requests.append(request.headers.get("Range"))
        start = int(request.headers["Range"].split("=")[1].rstrip("-")) if "Range" in request.headers else 0
        return FakeResponse(payload[start:], 206 if start else 200)

    monkeypatch.setattr(download.urllib.request, "urlopen", server)
    dest = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(payload[:1000])
    download.fetch("http://example.invalid/file", dest, "sha256:" + hashlib.sha256(payload).hexdigest())
    assert dest.read_bytes() == payload and requests == ["bytes=1000-"]

    bad = tmp_path / "bad.bin"
    with pytest.raises(DataError, match="failed its md5 check"):
        download.fetch("http://example.invalid/file", bad, "md5:" + "0" * 32)
    assert not bad.exists()


def test_an_error_page_downloaded_instead_of_the_archive_is_one_line_and_deleted(tmp_path, monkeypatch):
    page = b"<!DOCTYPE html>\n<html><body>Sign in to continue</body></html>"
    monkeypatch.setattr(download.urllib.request, "urlopen", lambda request, timeout: FakeResponse(page, 200))
    with pytest.raises(DataError, match="sent an HTML page instead of the zip archive .*now deleted") as info:
        download.download("chest_xray", tmp_path / "chest")
    assert "\n" not in str(info.value)
    assert not (tmp_path / ".download-chest_xray" / "ChestXRay2017.zip").exists() and not (tmp_path / "chest").exists()


def test_a_damaged_zip_archive_is_one_line(tmp_path):
    import zipfile

    staged = tmp_path / ".download-chest_xray" / "ChestXRay2017.zip"
    staged.parent.mkdir()
    with zipfile.ZipFile(staged, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("chest_xray/train/NORMAL/a.jpeg", b"x" * 5000)
    data = bytearray(staged.read_bytes())
    data[60:80] = b"\x00" * 20  # inside the compressed member
    staged.write_bytes(bytes(data))
    with pytest.raises(DataError, match="is damaged .* delete it and rerun with --download"):
        download.download("chest_xray", tmp_path / "chest")
