"""Fetching data sets into a local cache (downloads only when the file is not there yet)."""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from ..utils import current_umask

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
    # the last segment of the URL's path ("https://host/" or "https://host/a/" have none)
    name = fname or urllib.parse.unquote(urllib.parse.urlparse(url).path).rstrip("/").rpartition("/")[2]
    if not name or name in (".", ".."):
        raise ValueError(f"Cannot tell a file name from the URL {url!r}; pass `fname=`.")
    target = dest_dir / name
    if target.exists() and not force:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates owner-only files; a cache file is an ordinary file
        os.replace(tmp, target)
    except BaseException as e:  # also on Ctrl-C: never leave the partial file behind
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, Exception):
            raise OSError(f"Could not download {url!r} to {target}: {e}") from e
        raise
    return target


_ARCHIVE_EXTS = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


def untar_data(url: str, dest: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Download an archive (tar, tar.gz/bz2/xz or zip) and extract it next to it once; returns the
    folder, named after the archive without its extension (an archive holding a single top folder is
    unwrapped into it). Extraction goes to a temporary folder renamed when complete."""
    archive = download_url(url, dest, force=force)
    stem = archive.name
    ext = next((e for e in _ARCHIVE_EXTS if stem.lower().endswith(e)), None)
    # an unknown extension must not make the folder name equal the archive's own name
    stem = stem[: -len(ext)] if ext is not None else stem + ".extracted"
    folder = archive.parent / stem
    if folder.exists() and not force:
        return folder
    tmp = Path(tempfile.mkdtemp(dir=archive.parent, prefix=f".{stem}."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                t.extractall(tmp, filter="data")
        else:
            raise ValueError(f"{archive} (downloaded from {url!r}) is neither a tar nor a zip archive; delete it "
                             "and check the URL.")
        inner = list(tmp.iterdir())
        src = inner[0] if len(inner) == 1 and inner[0].is_dir() else tmp
        if folder.exists():
            shutil.rmtree(folder)
        shutil.move(str(src), folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
