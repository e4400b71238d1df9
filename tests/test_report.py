"""The HTML report of a run: self-contained (images as base64 data URIs, no external assets), showing every
plot of the run directory, the metrics per epoch, and escaping what it shows."""
from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepfit.cli import main
from deepfit.cli.base import Console, RunDir
from deepfit.cli.report import data_uri, render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("one_thread")


class _Refs(HTMLParser):
    """Every attribute that could load something: src, href, and url(...) in style."""

    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str]] = []
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a)
        for k in ("src", "href"):
            if k in a:
                self.refs.append(a[k])


def _png(path: Path, seed: int = 0) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot(np.random.default_rng(seed).normal(size=10))
    fig.savefig(path)
    plt.close(fig)


def test_data_uri_round_trip(tmp_path):
    p = tmp_path / "a.png"
    _png(p)
    uri = data_uri(p)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == p.read_bytes()


def test_report_embeds_every_figure_and_escapes_text(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.add_figure("one.png", "First <plot>", lambda p: _png(p, 1), caption="a & b")
    run.add_figure("two.png", "Second", lambda p: _png(p, 2))
    run.add_table("Rows", pd.DataFrame({"<col>": ["<script>alert(1)</script>", "x"], "v": [1.5, 2.0]}))
    run.file("metrics.csv").write_text("epoch,train_loss,valid_loss\n0,1.25,1.5\n1,0.75,0.875\n")
    run.summary["final_metrics"] = {"valid_loss": 0.875}
    html = render_report(run, "Title & co", {"lr": 0.01, "file": "a<b>.csv"})
    p = _Refs()
    p.feed(html)
    assert len(p.imgs) == 2
    for img, name in zip(p.imgs, ["one.png", "two.png"]):
        assert img["src"] == data_uri(run.file(name))
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;col&gt;" in html
    assert "First &lt;plot&gt;" in html and "a &amp; b" in html and "a&lt;b&gt;.csv" in html
    assert "Title &amp; co" in html
    # metrics table: a header and one row per epoch
    table = html.split("Metrics per epoch", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr>") == 3 and "0.875" in table


def test_failed_figure_is_a_warning_and_left_out(tmp_path, capsys):
    run = RunDir.create(tmp_path / "r")

    def broken(path):
        raise ValueError("no data to plot")
    assert run.add_figure("bad.png", "Broken plot", broken, console=Console()) is False
    assert "could not draw broken plot: ValueError: no data to plot" in capsys.readouterr().err
    assert run.items == [] and not run.file("bad.png").exists()


def test_report_of_a_real_run_is_self_contained(tmp_path, capsys):
    rng = np.random.default_rng(0)
    n = 200
    df = pd.DataFrame({"a": rng.normal(size=n), "c": rng.choice(list("pqrs"), n)})
    df["y"] = np.where(df["a"] + (df["c"] == "p") > 0.5, "yes", "no")
    csv = tmp_path / "d.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "run"
    code = main(["train", "tabular", str(csv), "--target", "y", "--out", str(out), "--epochs", "2",
                 "--lr-find-iters", "20", "--bs", "32", "-q"])
    assert code == 0, capsys.readouterr().err
    html = (out / "report.html").read_text(encoding="utf-8")
    p = _Refs()
    p.feed(html)
    pngs = sorted(f.name for f in out.glob("*.png"))
    assert {"loss.png", "schedule.png", "lr_find.png", "confusion_matrix.png", "feature_importance.png"} <= set(pngs)
    assert len(p.imgs) == len(pngs)  # every plot of the run is shown
    embedded = {base64.b64decode(i["src"].split(",", 1)[1]) for i in p.imgs}
    assert embedded == {(out / f).read_bytes() for f in pngs}
    assert all(b.startswith(PNG_MAGIC) for b in embedded)
    # nothing outside the page is referenced
    assert all(r.startswith("data:") for r in p.refs)
    assert "link" not in p.tags and "script" not in p.tags and "iframe" not in p.tags
    assert not re.search(r"https?://|url\(", html)
    # it reports the last epoch's metrics from metrics.csv
    m = pd.read_csv(out / "metrics.csv")
    assert f"{m['accuracy'].iloc[-1]:.6g}" in html
    assert "Top losses" in html and "Configuration" in html
