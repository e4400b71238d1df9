"""Fetching data sets into a local cache (downloads only when the file is not there yet)."""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path

__all__ = ["download_url", "untar_data", "cache_dir"]


def cache_dir() -> Path:
    """Where downloads go: $DEEPFIT_CACHE, or ~/.cache/deepfit."""
    return Path(os.environ.get("DEEPFIT_CACHE", Path.home() / ".cache" / "deepfit"))


def download_url(url: str, dest: str | os.PathLike | None = None, fname: str | None = None,
                 force: bool = False, timeout: float = 60.0) -> Path:
    """Download `url` into `dest` (default: the cache directory) unless the file is already there.

    The file is written to a temporary name first and renamed when complete, so an interrupted
    download never leaves a file that looks finished. `file://` URLs work too (used by the tests).

    Returns:
        The path of the downloaded file.
    """
    dest_dir = Path(dest) if dest is not None else cache_dir()
    dest_dir.mkdir(parents=True, exist_ok=True)
    name = fname or Path(urllib.request.url2pathname(url.split("?")[0])).name
    if not name:
        raise ValueError(f"Cannot tell a file name from the URL {url!r}; pass `fname=`.")
    target = dest_dir / name
    if target.exists() and not force:
        return target
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except Exception as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(f"Could not download {url!r} to {target}: {e}") from e
    return target


def untar_data(url: str, dest: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download an archive (tar/tgz/zip) and extract it next to it once; returns the folder."""
    archive = download_url(url, dest, force=force)
    stem = archive.name
    for ext in (".tar.gz", ".tgz", ".tar", ".zip"):
        if stem.endswith(ext):
            stem = stem[: -len(ext)]
            break
    folder = archive.parent / stem
    if folder.exists() and not force:
        return folder
    tmp = Path(tempfile.mkdtemp(dir=archive.parent, prefix=f".{stem}."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        inner = list(tmp.iterdir())
        src = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(src), folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
