"""Small shared helpers for the library's matplotlib figures.

matplotlib is imported only inside these functions, so ``import deepfit`` stays light.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["pyplot", "finish_figure", "SAVE_PAD_INCHES"]

#: Margin around the tight bounding box of a saved figure, in inches.
SAVE_PAD_INCHES = 0.1


def pyplot() -> Any:
    """Import and return ``matplotlib.pyplot``. The backend is left alone: a notebook keeps its inline
    backend even when a figure is also saved to a file, and on a machine without a display matplotlib
    falls back to the file-only Agg backend by itself."""
    import matplotlib.pyplot as plt
    return plt


def finish_figure(fig: Any, fname: str | Path | None, dpi: float | None = 100, close: bool = True) -> Any:
    """Tighten the layout of `fig` and, when `fname` is given, save it there (creating the parent
    folder) at `dpi` (``None``: matplotlib's ``savefig.dpi`` setting) and close it unless
    ``close=False``. Returns `fig`.

    The saved image is cropped or grown to the figure's tight bounding box (``bbox_inches="tight"``)
    plus a small margin, so a label that the layout could not fit into the figure is saved whole
    rather than cut off at the figure's edge."""
    fig.tight_layout()
    if fname is not None:
        Path(fname).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(fname, dpi=dpi, bbox_inches="tight", pad_inches=SAVE_PAD_INCHES)
        if close:
            pyplot().close(fig)
    return fig
