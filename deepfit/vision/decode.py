"""Decoding image files once, in worker threads, into one uint8 array (in memory or memory-mapped).

Every image is opened with Pillow, turned upright (EXIF orientation), converted to RGB or grey
(greyscale, RGBA / LA / transparent palette images are put on a white background, CMYK, YCbCr,
16-bit and float images are converted to 8 bits), and resized to one fixed size:

- ``"crop"``: scaled so that it covers the size, then the centre is cut out (keeps the aspect ratio);
- ``"squash"``: stretched to the size (keeps the whole image, changes the aspect ratio);
- ``"pad"``: scaled to fit inside the size, the rest filled with black (keeps everything).

Pillow releases the GIL while it decodes and resizes, so a thread pool (`concurrent.futures`) uses
every core without copying images between processes; for many small files, whose time goes to header
parsing in Python, `decode_images` uses forked processes on machines with 4 or more cores. An
unreadable or truncated file never stops a worker deep inside: each failure is collected with its path
and reason (`DecodeFailure`) and reported by the caller (stop with an `ImageDecodeError`, or skip with
a warning).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "ImageDecodeError", "DecodeFailure", "decode_image", "decode_images",
           "to_uint8_array", "RESIZE_MODES", "failure_message"]

ResizeMode = Literal["crop", "squash", "pad"]
RESIZE_MODES = ("crop", "squash", "pad")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".ppm", ".pgm", ".pbm", ".pnm", ".ico", ".tga", ".jp2", ".dib"})


class ImageDecodeError(ValueError):
    """An image file that cannot be used (unreadable, truncated, not an image, of the wrong size...);
    the message names the file(s) and the reason (`path` and `reason` for a single file)."""

    def __init__(self, message: str, path: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.path, self.reason = path, reason if reason is not None else message


@dataclass
class DecodeFailure:
    """One file that could not be decoded: where it is in the list, its path and why."""

    index: int
    path: str
    reason: str


def failure_message(failures: Sequence[DecodeFailure], total: int, hint: str = "") -> str:
    """A readable message naming up to 5 failed files and their reasons."""
    shown = "; ".join(f"{f.path}: {f.reason}" for f in failures[:5])
    more = f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    return f"{len(failures)} of {total} image file(s) could not be read: {shown}{more}.{(' ' + hint) if hint else ''}"


def _check_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, (int, np.integer)) for s in size):
        h, w = int(size[0]), int(size[1])
    else:
        raise ValueError(f"`size` must be an int or a (height, width) pair of ints; received size={size!r}.")
    if h < 1 or w < 1:
        raise ValueError(f"`size` must be at least 1 pixel; received size={size!r}.")
    return h, w


def _to_8bit(img: Any) -> Any:
    """16-bit / 32-bit integer and float images as 8-bit grey ('L')."""
    from PIL import Image
    arr = np.asarray(img)
    if img.mode.startswith("I;16"):
        arr = arr.astype(np.float64) / 257.0  # 0..65535 -> 0..255
    elif img.mode == "I":
        arr = arr.astype(np.float64)
        if arr.max(initial=0) > 255:
            arr = arr / 257.0
    else:  # "F"
        arr = arr.astype(np.float64)
        if arr.size and arr.min() >= 0 and arr.max() <= 1:
            arr = arr * 255.0
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def _convert(img: Any, channels: int) -> Any:
    """`img` as mode 'RGB' (channels 3) or 'L' (channels 1)."""
    from PIL import Image
    mode = img.mode
    if mode in ("I", "F") or mode.startswith("I;16"):
        img = _to_8bit(img)
        mode = "L"
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))  # transparent pixels become white
        img = Image.alpha_composite(bg, rgba).convert("RGB")
        mode = "RGB"
    target = "RGB" if channels == 3 else "L"
    return img if mode == target else img.convert(target)


def _resize(img: Any, h: int, w: int, resize: str) -> Any:
    from PIL import Image
    W, H = img.size
    if (W, H) == (w, h):
        return img
    method = Image.Resampling.BILINEAR
    if resize == "squash":
        return img.resize((w, h), method, reducing_gap=3.0)
    if resize == "crop":
        scale = max(h / H, w / W)  # cover the target, then cut the centre
        cw, ch = w / scale, h / scale
        left, top = (W - cw) / 2, (H - ch) / 2
        return img.resize((w, h), method, box=(left, top, left + cw, top + ch), reducing_gap=3.0)
    scale = min(h / H, w / W)  # "pad": fit inside, black borders
    nw, nh = max(1, round(W * scale)), max(1, round(H * scale))
    small = img.resize((nw, nh), method, reducing_gap=3.0)
    canvas = Image.new(img.mode, (w, h))
    canvas.paste(small, ((w - nw) // 2, (h - nh) // 2))
    return canvas


def decode_image(path: str | os.PathLike | Any, size: int | Sequence[int] | None = None,
                 resize: ResizeMode = "crop", channels: int = 3) -> np.ndarray:
    """Decode one image file (or a PIL image) into a uint8 array (channels, height, width).

    Args:
        path: an image file, or an already opened PIL image.
        size: the output size (int or (height, width)); None keeps the image's own size.
        resize: ``"crop"``, ``"squash"`` or ``"pad"`` (see the module doc).
        channels: 3 (RGB) or 1 (grey).

    Raises:
        ImageDecodeError: the file is missing, not an image, truncated or corrupt (naming it).
    """
    from PIL import Image
    if channels not in (1, 3):
        raise ValueError(f"`channels` must be 1 (grey) or 3 (RGB); received channels={channels!r}.")
    if resize not in RESIZE_MODES:
        raise ValueError(f"`resize` must be one of {RESIZE_MODES}; received resize={resize!r}.")
    hw = _check_size(size) if size is not None else None
    name = getattr(path, "filename", None) or str(path)
    try:
        if isinstance(path, Image.Image):
            arr = _fit(path, hw, resize, channels)
        else:
            with Image.open(path) as img:  # closes the file even for multi-frame images (GIF, TIFF)
                if hw is not None and img.format == "JPEG" and img.size[0] > 2 * hw[1] and img.size[1] > 2 * hw[0]:
                    # decode big JPEGs at a reduced scale (by 1/2, 1/4, 1/8) that is still at least the target:
                    # several times faster, and the resize does the rest
                    tgt = (hw[1], hw[0]) if resize != "crop" else _cover(img.size, hw)
                    img.draft("RGB" if channels == 3 else "L", tgt)
                arr = _fit(img, hw, resize, channels)
    except FileNotFoundError:
        raise ImageDecodeError(f"{name}: no such file", name, "no such file") from None
    except Exception as e:  # noqa: BLE001 - any failure of a plug-in on a bad file is reported by path
        reason = str(e) or type(e).__name__
        if "cannot identify image file" in reason:
            reason = "not an image file (Pillow cannot identify it)"
        elif "truncated" in reason.lower() or "corrupt" in reason.lower():
            reason = f"truncated or corrupt image ({reason})"
        elif not isinstance(e, (OSError, ValueError, SyntaxError, EOFError)):
            reason = f"unreadable image ({type(e).__name__}: {reason})"
        raise ImageDecodeError(f"{name}: {reason}", name, reason) from None
    if arr.ndim == 2:
        arr = arr[None]
    else:
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr)


def _fit(img: Any, hw: tuple[int, int] | None, resize: str, channels: int) -> np.ndarray:
    """Decode `img` now (a truncated file fails here), turn it upright, convert and resize it: (H, W[, C])."""
    from PIL import ImageOps
    img.load()
    if "exif" in img.info or "Orientation" in img.info:  # only photos can carry a rotation
        img = ImageOps.exif_transpose(img)
    img = _convert(img, channels)
    if hw is not None:
        img = _resize(img, hw[0], hw[1], resize)
    return np.asarray(img, dtype=np.uint8)


def _cover(img_size: tuple[int, int], hw: tuple[int, int]) -> tuple[int, int]:
    # the (width, height) an image of `img_size` is scaled to so that it covers `hw` (crop mode)
    W, H = img_size
    scale = max(hw[0] / H, hw[1] / W)
    return max(1, int(np.ceil(W * scale))), max(1, int(np.ceil(H * scale)))


def default_workers() -> int:
    """Threads for decoding: the cores this process may use (at most 32)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    return max(1, min(32, n))


def _decode_chunk(task: tuple[int, Sequence[Any], tuple[int, int], str, int]) -> tuple[int, np.ndarray,
                                                                                       list[DecodeFailure]]:
    """Decode `paths` (rows `lo`...) into a new array; failures are returned, never raised."""
    lo, paths, hw, resize, channels = task
    arr = np.zeros((len(paths), channels, *hw), dtype=np.uint8)
    bad = []
    for k, p in enumerate(paths):
        try:
            arr[k] = decode_image(p, hw, resize, channels)
        except ImageDecodeError as e:
            bad.append(DecodeFailure(lo + k, str(p), e.reason))
    return lo, arr, bad


def _small_files(paths: Sequence[Any], limit: int = 64 * 1024) -> bool:
    """Whether the files are small on average (judged on up to 32 of them)."""
    step = max(1, len(paths) // 32)
    sizes = []
    for p in list(paths)[::step][:32]:
        try:
            sizes.append(os.path.getsize(p))
        except (OSError, TypeError):
            pass
    return bool(sizes) and sum(sizes) / len(sizes) < limit


def decode_images(paths: Sequence[str | os.PathLike], size: int | Sequence[int], resize: ResizeMode = "crop",
                  channels: int = 3, out: np.ndarray | None = None, num_workers: int | None = None,
                  progress: Any = None, processes: bool | None = None) -> tuple[np.ndarray, list[DecodeFailure]]:
    """Decode many files with a pool of workers into one uint8 array (N, channels, height, width).

    Pillow releases the GIL while it decodes and resizes, so threads share the cores well for photos.
    For many small files (CIFAR's 32x32 JPEGs), most of the time is spent parsing headers in Python,
    which holds the GIL, so threads cannot use more than about one core: there a pool of forked processes
    scales with the cores (`processes=None` picks it with at least 4 workers for at least 4,096 files
    averaging under 64 KB, where `fork` exists; True/False forces the choice).

    Args:
        paths: the image files.
        size: the output size of every image (int or (height, width)).
        resize: ``"crop"``, ``"squash"`` or ``"pad"``.
        channels: 3 (RGB) or 1 (grey).
        out: where to write (e.g. a `numpy.memmap` of that shape); default a new array in memory.
        num_workers: workers (default: the usable cores; 0 or 1 decodes in this thread).
        progress: an optional object with `update(n)` (e.g. a tqdm bar), called as images finish.
        processes: use processes instead of threads (see above).

    Returns:
        `(array, failures)`: the rows of failed files are left zero and listed in `failures` (in order).
    """
    h, w = _check_size(size)
    n = len(paths)
    if out is None:
        out = np.zeros((n, channels, h, w), dtype=np.uint8)
    elif out.shape != (n, channels, h, w) or out.dtype != np.uint8:
        raise ValueError(f"`out` must be uint8 of shape {(n, channels, h, w)}; received {out.dtype} {out.shape}.")
    workers = default_workers() if num_workers is None else int(num_workers)
    can_fork = "fork" in mp.get_all_start_methods()
    if processes is None:
        processes = can_fork and workers >= 4 and n >= 4096 and _small_files(paths)
    failures: list[DecodeFailure] = []

    def done(lo: int, arr: np.ndarray | None, bad: list[DecodeFailure], count: int) -> None:
        if arr is not None:
            out[lo:lo + len(arr)] = arr
        failures.extend(bad)
        if progress is not None:
            progress.update(count)

    def work(lo: int, hi: int) -> list[DecodeFailure]:  # threads write their rows directly
        bad = []
        for i in range(lo, hi):
            try:
                out[i] = decode_image(paths[i], (h, w), resize, channels)
            except ImageDecodeError as e:
                bad.append(DecodeFailure(i, str(paths[i]), e.reason))
        return bad

    chunk = 256 if processes else 64  # per task: amortise the pool, and still balance the workers
    ranges = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
    if workers <= 1 or n <= chunk:
        for lo, hi in ranges:
            done(lo, None, work(lo, hi), hi - lo)
    elif processes and can_fork:
        # forked workers inherit the imported modules (no start-up import); they only run Pillow and numpy
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
            futs = [pool.submit(_decode_chunk, (lo, [str(p) for p in paths[lo:hi]], (h, w), resize, channels))
                    for lo, hi in ranges]
            for fut in cf.as_completed(futs):
                lo, arr, bad = fut.result()
                done(lo, arr, bad, len(arr))
    else:
        with cf.ThreadPoolExecutor(max_workers=workers) as pool:
            futs = {pool.submit(work, lo, hi): (lo, hi) for lo, hi in ranges}
            for fut in cf.as_completed(futs):
                lo, hi = futs[fut]
                done(lo, None, fut.result(), hi - lo)
    failures.sort(key=lambda f: f.index)
    return out, failures


def to_uint8_array(x: Any, name: str = "x") -> np.ndarray:
    """Images as uint8 (N, C, H, W): accepts uint8 or float arrays/tensors shaped (N, H, W), (N, 1|3, H, W)
    or (N, H, W, 1|3). Floats in [0, 1] are scaled by 255; floats in [0, 255] are rounded.

    Raises:
        ValueError: another shape, or values outside those ranges (naming `name`).
    """
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)  # NHWC -> NCHW
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(f"`{name}` must hold images shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or "
                         f"3; received shape {arr.shape}.")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"`{name}` must be numbers (uint8 0..255 or float 0..1); received dtype {arr.dtype}.")
    a = arr.astype(np.float64)
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"`{name}` holds NaN or infinite values.")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise ValueError(f"`{name}` values must be in 0..1 (floats) or 0..255; received values from {lo:g} to "
                         f"{hi:g}. Scale them first (normalisation is done by the DataLoaders).")
    if np.issubdtype(arr.dtype, np.floating) and hi <= 1.0:
        a = a * 255.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)
