"""Fetch the official archives (resumable, checksum-verified, with a progress bar).

Without network the user gets one line saying what to download and where to put it.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from medclf.config import datasets
from medclf.data.errors import DataError


def missing_data_message(dataset: str, root: Path) -> str:
    """The one-line error for a data set that is not at ``root``."""
    archive = datasets.get(dataset).archive
    if archive is None:
        return f"data root {root} does not exist: pass --data-root PATH pointing at your data set"
    where = f"save it as {root}" if not archive.marker else f"unpack it so that {root} holds {', '.join(archive.marker)}"
    return f"data root {root} does not exist: download {archive.url} ({archive.source}), {where}; or rerun with --download"


def _verify(path: Path, checksum: str | None) -> None:
    if checksum is None:
        return
    algo, expected = checksum.split(":", 1)
    digest = hashlib.new(algo)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        path.unlink()
        raise DataError(f"{path} failed its {algo} check (got {digest.hexdigest()}, published {expected}): "
                        "it was deleted; rerun with --download to fetch it again")


def fetch(url: str, dest: Path, checksum: str | None, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part``, then verify ``checksum``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    done = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = response.status == 206
            total = int(response.headers.get("Content-Length") or 0) + (done if resumed else 0)
            with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total or None, initial=done if resumed else 0, unit="B", unit_scale=True, desc=dest.name
            ) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"cannot download {url} ({reason}): if this machine is offline, download it "
                        f"elsewhere and put it at {dest}") from None
    part.rename(dest)
    _verify(dest, checksum)
    return dest


def _require_zip(path: Path, url: str, fetched: bool) -> None:
    """``path`` must be a zip archive; else (an error page saved in its place, a cut download) one line
    naming it, deleted when it was fetched just now."""
    if zipfile.is_zipfile(path):
        return
    with open(path, "rb") as handle:
        head = handle.read(512).lstrip().lower()
    kind = "an HTML page" if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head else \
        f"{path.stat().st_size} bytes that are not a zip archive"
    if fetched:
        path.unlink()
        raise DataError(f"{url} sent {kind} instead of the zip archive (saved as {path}, now deleted): "
                        f"open the address in a browser, download the archive by hand and put it at {path}")
    raise DataError(f"{path} is {kind}, not the zip archive: delete it and rerun with --download, or download "
                    f"{url} by hand and put it there")


def _find_root(folder: Path, marker: tuple[str, ...]) -> Path | None:
    for candidate in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir() and "__MACOSX" not in p.parts)]:
        if all((candidate / name).is_dir() for name in marker):
            return candidate
    return None


def download(dataset: str, root: Path) -> Path:
    """Fetch and unpack ``dataset`` so that ``root`` holds it.

    Raises:
        DataError: the data set has no official download, the download failed, or the archive
            does not hold the expected folders.
    """
    archive = datasets.get(dataset).archive
    if archive is None:
        raise DataError(f"there is no official download for '{dataset}': put your data at {root}")
    if not archive.marker:
        return fetch(archive.url, root, archive.checksum)
    staging = root.parent / f".download-{dataset}"
    zip_path = staging / archive.filename
    fetched = not zip_path.exists()
    if fetched:
        fetch(archive.url, zip_path, archive.checksum)
    _require_zip(zip_path, archive.url, fetched)
    unpacked = staging / "unpacked"
    shutil.rmtree(unpacked, ignore_errors=True)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            members = zf.namelist()
            for member in tqdm(members, desc="unpacking", unit="file", mininterval=2.0):
                zf.extract(member, unpacked)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        shutil.rmtree(unpacked, ignore_errors=True)
        raise DataError(f"{zip_path} is damaged ({exc}): delete it and rerun with --download") from None
    found = _find_root(unpacked, archive.marker)
    if found is None:
        raise DataError(f"{zip_path} does not hold the folders {', '.join(archive.marker)}: delete it and retry")
    found.rename(root)
    shutil.rmtree(staging, ignore_errors=True)
    return root
