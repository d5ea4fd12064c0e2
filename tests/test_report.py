"""Run report: PNGs of the expected size, tables present, and the page renders in headless Chromium."""

import os
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

from delaynir.cli import main
from delaynir.handoff.report_plots import PIXELS, clustering

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(small_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    assert main(["-q", "report", str(small_run), "--out", str(root / "rep")]) == 0
    return root / "rep"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def test_pngs_are_images_of_the_expected_size(report):
    names = {"training", "rasters", "delays", "weight_delay", "structure", "confusion"}
    assert {p.stem for p in report.glob("*.png")} == names
    for png in report.glob("*.png"):
        assert _png_size(png) == PIXELS, png
        assert png.stat().st_size > 5000, png  # more than a blank canvas


def test_page_is_self_contained_with_every_table(report):
    page = (report / "report.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 6
    assert not re.search(r'src="(?!data:)', page)  # nothing loaded from files or the network
    for table in ("clustering", "verification", "fit"):
        assert f'<table id="{table}">' in page, table
    for sim in ("norse", "snntorch", "onnxruntime", "trained"):
        assert f"<td>{sim}</td>" in page
    assert "Hardware fit: loihi2" in page and "sign-shuffled baseline" in page


def test_clustering_is_high_for_clustered_signs_and_near_baseline_for_random():
    rng = np.random.default_rng(0)
    mag = rng.uniform(0.5, 1.0, (8, 12, 10))
    clustered = mag * np.where(np.arange(12)[None, :, None] < 6, 1.0, -1.0)  # two same-sign halves
    random = mag * rng.choice([-1.0, 1.0], mag.shape)
    c, r = clustering(clustered), clustering(random)
    assert c["same_sign_fraction"] > 0.9 and c["excess"] > 0.3
    assert abs(r["excess"]) < 0.05


def test_report_rejects_an_unknown_target(report, small_run, capsys):
    run = small_run
    assert main(["report", str(run), "--out", str(report.parent / "x"), "--target", "nosuchchip"]) == 2
    assert "nosuchchip" in capsys.readouterr().err


def test_an_existing_report_is_replaced_only_with_overwrite(report, small_run, capsys, monkeypatch):
    run, out = small_run, report.parent / "again"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["-q", "report", str(run), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "notes.txt").read_text() == "mine"

    import delaynir.handoff.report_plots as plots

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # interrupted half-way through the figures

    monkeypatch.setattr(plots, "confusion_plot", broken)
    assert main(["-q", "report", str(run), "--out", str(out), "--overwrite"]) == 130  # the CLI's interrupt status
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".again")) == []  # no partial dir
    assert (out / "notes.txt").read_text() == "mine"  # the old directory is untouched
    monkeypatch.undo()
    assert main(["-q", "report", str(run), "--out", str(out), "--overwrite"]) == 0
    assert (out / "report.html").exists() and not (out / "notes.txt").exists()


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed; .ci/run installs it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def _browser(args, tmp_path):
    profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"
    profile.mkdir()
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120
    )


def test_page_renders_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    url = (report / "report.html").resolve().as_uri()
    dom = _browser(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    assert 'data-images="6"' in body.group(0) and 'data-images-loaded="true"' in body.group(0), body.group(0)
    for table in ("clustering", "verification", "fit"):
        assert f'<table id="{table}">' in dom

    shot = tmp_path / "shot.png"
    _browser(["--hide-scrollbars", "--window-size=1100,1600", f"--screenshot={shot}", url], tmp_path)
    assert _png_size(shot) == (1100, 1600)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.std() > 0.05  # not blank: text and figures on white
