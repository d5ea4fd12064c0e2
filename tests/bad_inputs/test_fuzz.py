"""Property-based fuzzing of every reader: random byte flips and truncations of a valid file either load
(to content the reader has validated; the same content where the format carries a checksum) or fail with
a DelayNIRError; never anything else. Derandomized, so every run tries the same files."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delaynir.errors import DelayNIRError
from delaynir.train import checkpoints

FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@st.composite
def damage(draw):
    """(flips as (relative position, xor mask), truncation as a fraction of the length or None)."""
    flips = draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), max_size=4))
    cut = draw(st.none() | st.floats(0, 1, exclude_max=True))
    return flips, cut


def damaged_copy(original: Path, how, folder: Path) -> Path:
    data = bytearray(original.read_bytes())
    flips, cut = how
    for position, mask in flips:
        data[int(position * len(data))] ^= mask
    if cut is not None or not flips:
        data = data[: int((cut or 0.5) * len(data))]
    path = folder / original.name
    path.write_bytes(bytes(data))
    return path


def loads_or_refuses(read, original: Path, how) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = damaged_copy(original, how, Path(folder))
        try:
            read(path)
        except DelayNIRError as exc:
            assert str(exc).strip()


@pytest.fixture(scope="module")
def onnx_file(graph_file, tmp_path_factory):
    from delaynir.converters.onnx_export import export_onnx
    from delaynir.ir.graph_io import load_graph

    return export_onnx(load_graph(graph_file), tmp_path_factory.mktemp("fuzz") / "model.onnx")


@pytest.fixture(scope="module")
def target_file(tmp_path_factory):
    from importlib import resources

    path = tmp_path_factory.mktemp("fuzz") / "chip.toml"
    path.write_text(resources.files("delaynir.targets.loihi2").joinpath("loihi2.toml").read_text())
    return path


@pytest.fixture(scope="module")
def netx_file(small_run, tmp_path_factory):
    from delaynir.compile.compiler import compile_run
    from delaynir.ir.graph_io import load_graph
    from delaynir.targets.loihi2.netx import export_netx

    folder = tmp_path_factory.mktemp("fuzz")
    compile_run(small_run, "loihi2", folder / "loihi2.h5")
    return export_netx(load_graph(folder / "loihi2.h5"), folder / "model.netx.h5")


@pytest.fixture(scope="module")
def pynn_file(graph_file, tmp_path_factory):
    from delaynir.ir.graph_io import load_graph
    from delaynir.targets.spinnaker.pynn_export import export_pynn

    return export_pynn(load_graph(graph_file), tmp_path_factory.mktemp("fuzz") / "model.pynn.h5")


@pytest.fixture(scope="module")
def frames_file(tmp_path_factory):
    import numpy as np

    from delaynir.data.frames import write_frames_file

    path = tmp_path_factory.mktemp("fuzz") / "frames.h5"
    rng = np.random.default_rng(0)
    write_frames_file(path, rng.random((6, 20, 8)).astype(np.float32), rng.integers(0, 3, 6), dt=0.01)
    return path


def _read_frames(path):
    from delaynir.data.frames import FramesDataset

    dataset = FramesDataset(path, dt=0.01)
    for i in range(len(dataset)):
        dataset[i]


def _read_netx(path):
    """The Lava executor reads the whole file before it looks for Lava (ExecutorUnavailable without it)."""
    from delaynir.targets.loihi2 import executor

    executor.load(path)


def _read_pynn(path):
    """The NEST executor reads the whole file before it looks for NEST (ExecutorUnavailable without it)."""
    from delaynir.targets.spinnaker import nest_executor

    nest_executor.load(path)


def _read_spikes(path):
    from delaynir.data import SpikeDataset

    dataset = SpikeDataset(path, dt=0.01, n_steps=40, pool=1, cache=False)
    for i in range(len(dataset)):
        dataset[i]


def _read_graph(path):
    from delaynir.ir.graph_io import load_graph

    load_graph(path)


def _read_nir(path):
    from delaynir.export.nir_io import from_nir

    from_nir(path)


def _run_onnx(path):
    from delaynir.converters.onnxruntime import load_onnx

    model = load_onnx(path)
    model.run(torch.zeros(3, 2, model.n_inputs))


def _read_checkpoint(path):
    """A .pt file carries a content digest: a damaged one that loads holds the same tensors."""
    loaded = checkpoints.load_pt(path, checkpoints.CHECKPOINT_KEYS)
    original = checkpoints.load_pt(ORIGINALS["checkpoint"])
    assert loaded["epoch"] == original["epoch"]
    assert all(torch.equal(loaded["model"][k], v) for k, v in original["model"].items())


def _read_target(path):
    from delaynir.hardware.profile import load_target

    load_target(path)


def _read_config(path):
    from delaynir.train.config import load_config

    load_config(path)


def _read_vectors(path):
    from delaynir.handoff.bundle import read_test_vectors

    read_test_vectors(path)


def _check_bundle(path):
    """A damaged manifest is refused, or read; the check then fails or passes without another exception."""
    from delaynir.handoff.bundle import check_bundle

    bundle = path.parent / "bundle"
    shutil.copytree(ORIGINALS["bundle manifest"].parent, bundle)
    shutil.copy(path, bundle / "manifest.json")
    if check_bundle(bundle).ok:  # a flip that leaves the JSON meaning unchanged (e.g. in a version's text)
        assert (
            json.loads(path.read_text())["files"].keys()
            == json.loads(ORIGINALS["bundle manifest"].read_text())["files"].keys()
        )


# kind: (reader, fixture giving the valid file or its directory, file name in it or None)
READERS = {
    "spike file": (_read_spikes, "tiny_data", "train.h5"),
    "DelayGraph": (_read_graph, "graph_file", None),
    "NIR": (_read_nir, "nir_file", None),
    "ONNX": (_run_onnx, "onnx_file", None),
    "checkpoint": (_read_checkpoint, "small_run", checkpoints.CHECKPOINT),
    "target profile": (_read_target, "target_file", None),
    "config": (_read_config, "small_run", checkpoints.CONFIG),
    "test vectors": (_read_vectors, "bundle_dir", "test_vectors.h5"),
    "bundle manifest": (_check_bundle, "bundle_dir", "manifest.json"),
    "frames file": (_read_frames, "frames_file", None),
    "netx": (_read_netx, "netx_file", None),
    "PyNN network": (_read_pynn, "pynn_file", None),
}
ORIGINALS: dict[str, Path] = {}


@pytest.mark.parametrize("kind", READERS)
@given(how=damage())
@FUZZ
def test_damaged_file_loads_or_is_refused(request, kind, how):
    read, fixture, name = READERS[kind]
    original = request.getfixturevalue(fixture)
    ORIGINALS[kind] = original / name if name else original
    loads_or_refuses(read, ORIGINALS[kind], how)
