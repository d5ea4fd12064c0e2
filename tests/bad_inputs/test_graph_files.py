"""Bad DelayGraph files through `delaynir export` and `delaynir simulate`; bad bundles through `bundle --check`."""

from __future__ import annotations

import json
import shutil

import h5py
import pytest
from conftest import refused
from test_graph_io import MALFORMED, raw_spec, write_raw

from delaynir.data import SynthConfig, generate_synthetic
from delaynir.errors import DataFormatError
from delaynir.handoff.graph_data import evaluate_graph


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_graph_file(tmp_path, case):
    mutate, expected = MALFORMED[case]
    spec = raw_spec()
    mutate(spec)
    path = write_raw(tmp_path / "graph.h5", spec)
    refused(
        ["export", path, "--format", "nir", "-o", tmp_path / "g.nir"],
        names=path,
        says=expected[0],
        inputs=[path],
        outputs=[tmp_path / "g.nir"],
    )


def _set_delay(path, value):
    with h5py.File(path, "r+") as f:
        delay = f["layers/000/projections/000/delay"]
        data = delay[()]
        data[0] = value
        delay[...] = data


# case id: (damage done to a copy of a compiled graph, text the message must contain)
def _huge_weight(path):
    with h5py.File(path, "r+") as f:
        del f["layers/000/projections/000/weight"]
        f.create_dataset("layers/000/projections/000/weight", shape=(10**13,), dtype="f8", chunks=(4096,))


DAMAGED = {
    "delay of 4e9 steps": (lambda p: _set_delay(p, 4_000_000_000), "would need"),
    "weights declared huge": (_huge_weight, "weight of shape (10000000000000,) would need"),
    "empty": (lambda p: p.write_bytes(b""), "not an HDF5 file"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:4096]), "cannot be opened as HDF5"),
    "a NIR file": (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)), "cannot be opened as HDF5"),
    "text": (lambda p: p.write_text("layers: 2"), "not an HDF5 file"),
}


@pytest.mark.parametrize("case", DAMAGED, ids=list(DAMAGED))
def test_damaged_graph_file(graph_file, small_run, tmp_path, case):
    damage, says = DAMAGED[case]
    path = shutil.copy(graph_file, tmp_path / "graph.h5")
    damage(path)
    for argv in (
        ["export", path, "--format", "onnx", "-o", tmp_path / "g.onnx"],
        ["simulate", path, "--data", small_run.parent / "data"],
    ):
        refused(argv, names=path, says=says, inputs=[path], outputs=[tmp_path / "g.onnx"])


def test_graph_given_data_it_does_not_take(graph_file, tmp_path):
    """Data with other inputs than the graph takes is a data error (exit 2) naming the data file."""
    other = tmp_path / "other"
    generate_synthetic(
        other, SynthConfig(n_channels=5, n_classes=3, n_train=4, n_test=4, duration=0.4, spread=20, n_groups=3)
    )
    refused(
        ["simulate", graph_file, "--data", other],
        names=other / "test.h5",
        says="gives 5 inputs after pooling by 1; the graph takes 12",
        inputs=[graph_file, other],
    )
    with pytest.raises(DataFormatError, match="the graph takes 12"):
        evaluate_graph(graph_file, other)


# ----------------------------------------------------------------------------- bundles


def _manifest(change):
    def damage(bundle):
        path = bundle / "manifest.json"
        manifest = json.loads(path.read_text())
        path.write_text(json.dumps(change(manifest)))

    return damage


# case id: (damage done to a copy of a bundle, text the message must contain); not a bundle: exit status 2
NOT_BUNDLES = {
    "manifest missing": (lambda b: (b / "manifest.json").unlink(), "does not exist"),
    "manifest not JSON": (lambda b: (b / "manifest.json").write_text("{files"), "not readable as JSON"),
    "manifest binary": (lambda b: (b / "manifest.json").write_bytes(bytes(range(256))), "cannot be read as UTF-8"),
    "manifest a list": (_manifest(lambda m: [m]), "'files' must be an object"),
    "files a list": (_manifest(lambda m: dict(m, files=list(m["files"]))), "'files' must be an object"),
    "file outside the bundle": (
        _manifest(lambda m: dict(m, files={"../../etc/passwd": {"sha256": "0"}})),
        "is not a plain name inside the bundle",
    ),
    "file without hash": (_manifest(lambda m: dict(m, files={k: {} for k in m["files"]})), "'sha256' string"),
    "verification a list": (_manifest(lambda m: dict(m, verification=[1])), "'verification' must be an object"),
}


@pytest.fixture
def bundle_copy(bundle_dir, tmp_path):
    return shutil.copytree(bundle_dir, tmp_path / "bundle")


@pytest.mark.parametrize("case", NOT_BUNDLES, ids=list(NOT_BUNDLES))
def test_not_a_bundle(bundle_copy, case):
    damage, says = NOT_BUNDLES[case]
    damage(bundle_copy)
    refused(["bundle", "--check", bundle_copy], names="manifest.json", says=says, inputs=[bundle_copy])


def test_bundle_check_on_a_file_or_nothing(tmp_path):
    (tmp_path / "bundle.zip").write_bytes(b"PK")
    refused(["bundle", "--check", tmp_path / "bundle.zip"], names="bundle.zip", says="is not a directory")
    refused(["bundle", "--check", tmp_path / "absent"], names="absent", says="is not a directory")


def _flip(name, offset):
    def damage(bundle):
        data = bytearray((bundle / name).read_bytes())
        data[offset] ^= 0xFF
        (bundle / name).write_bytes(bytes(data))

    return damage


# a bundle whose files are damaged: the check fails (exit status 1), naming every damaged file
DAMAGED_BUNDLES = {
    "model.onnx metadata byte flipped": (_flip("model.onnx", -200), "model.onnx"),
    "model.onnx graph byte flipped": (_flip("model.onnx", 5000), "model.onnx"),
    "model.onnx truncated": (
        lambda b: (b / "model.onnx").write_bytes((b / "model.onnx").read_bytes()[:300]),
        "onnxruntime: model.onnx cannot be run",
    ),
    "model.nir text": (lambda b: (b / "model.nir").write_text("nir"), "norse: model.nir cannot be run"),
    "test vectors truncated": (
        lambda b: (b / "test_vectors.h5").write_bytes(b"\x89HDF\r\n\x1a\n"),
        "test_vectors.h5: unreadable",
    ),
}


@pytest.mark.parametrize("case", DAMAGED_BUNDLES, ids=list(DAMAGED_BUNDLES))
def test_damaged_bundle_fails_its_check(bundle_copy, case):
    damage, says = DAMAGED_BUNDLES[case]
    damage(bundle_copy)
    refused(
        ["bundle", "--check", bundle_copy],
        names=says.split()[-1] if " " in says else says,
        says=[says, "SHA-256 differs"],
        inputs=[bundle_copy],
        status=1,
    )
