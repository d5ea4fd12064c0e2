"""Bad NIR files through `delaynir import` (ours edited or damaged, and other tools' files)."""

from __future__ import annotations

import json
import shutil

import h5py
import nir
import numpy as np
import pytest
from conftest import refused

META = "delaynir"


def _without_node(name):
    def edit(g):
        del g.nodes[name]
        g.edges[:] = [e for e in g.edges if name not in e]

    return edit


def _meta(change):
    def edit(g):
        meta = json.loads(g.metadata[META])
        change(meta)
        g.metadata[META] = json.dumps(meta)

    return edit


def _raw_meta(text):
    return lambda g: g.metadata.__setitem__(META, text)


def _weights(change):
    def edit(g):
        node = g.nodes["layer_hidden2.p0.weight"]
        node.weight = change(np.array(node.weight))

    return edit


def _stray(g):
    g.nodes["extra"] = nir.Linear(weight=np.eye(2))


# case id: (edit of our exported graph before it is written again, text the message must contain)
EDITED = {
    "weight node removed": (
        _without_node("layer_hidden2.p0.weight"),
        "node 'layer_hidden2.p0.weight' of its projection 0",
    ),
    "select node removed": (_without_node("layer_hidden1.p0.select"), "layer_hidden1.p0.select"),
    "a synapse zeroed": (_weights(lambda w: np.where(w == w[w != 0][0], 0, w)), "its metadata says"),
    "a synapse added": (_weights(lambda w: np.where(w == 0, 1.0, w)), "its metadata says"),
    "stray node": (_stray, ["node(s) extra,", "belong to no layer"]),
    "metadata not JSON": (_raw_meta("{broken"), "metadata is not valid JSON"),
    "metadata a list": (_raw_meta("[1, 2]"), "expected an object, found list"),
    "metadata without layers": (_meta(lambda m: m.pop("layers")), "layers: expected list"),
    "metadata dt zero": (_meta(lambda m: m.update(dt=0)), "expected dt > 0"),
    "metadata dt text": (_meta(lambda m: m.update(dt="fast")), "dt: expected a number"),
    "metadata layer size text": (_meta(lambda m: m["layers"][0].update(size="16")), "layers[0].size: expected int"),
    "metadata projection count missing": (
        _meta(lambda m: m["layers"][1]["projections"][0].pop("n")),
        "layers[1].projections[0].n: expected int",
    ),
    "metadata newer format": (_meta(lambda m: m.update(format_version=99)), "written by a newer delaynir"),
    "metadata unknown source": (_meta(lambda m: m["layers"][1]["projections"][0].update(source="nowhere")), "nowhere"),
}


def _write(graph, path):
    nir.write(path, graph)
    return path


@pytest.mark.parametrize("case", EDITED, ids=list(EDITED))
def test_edited_delaynir_file(nir_file, tmp_path, case):
    edit, says = EDITED[case]
    graph = nir.read(nir_file)
    edit(graph)
    path = _write(graph, tmp_path / "edited.nir")
    refused(
        ["import", path, "--out", tmp_path / "g.h5"], names=path, says=says, inputs=[path], outputs=[tmp_path / "g.h5"]
    )


def _huge_dataset(path, key):
    with h5py.File(path, "r+") as f:
        del f[key]
        f.create_dataset(key, shape=(10**7, 10**6), dtype="f8", chunks=(64, 64))


def _set_type(path, node, kind):
    with h5py.File(path, "r+") as f:
        del f[f"node/nodes/{node}/type"]
        f[f"node/nodes/{node}/type"] = np.bytes_(kind)


# case id: (damage done to a copy of the file, text the message must contain)
DAMAGED = {
    "unknown node type": (lambda p: _set_type(p, "layer_hidden1.scale0", b"Quantum"), "layer_hidden1.scale0 (Quantum)"),
    "empty": (lambda p: p.write_bytes(b""), "not an HDF5 file"),
    "text": (lambda p: p.write_text("nodes: input -> output"), "not an HDF5 file"),
    "truncated": (lambda p: p.write_bytes(p.read_bytes()[:2000]), "cannot be opened as HDF5"),
    "a weight declared huge": (lambda p: _huge_dataset(p, "node/nodes/layer_hidden1.p0.weight/weight"), "would need"),
    "no nodes group": (lambda p: h5py.File(p, "r+").__delitem__("node/nodes"), "cannot be read as NIR"),
}


@pytest.mark.parametrize("case", DAMAGED, ids=list(DAMAGED))
def test_damaged_nir_file(nir_file, tmp_path, case):
    damage, says = DAMAGED[case]
    path = shutil.copy(nir_file, tmp_path / "damaged.nir")
    damage(path)
    refused(
        ["import", path, "--out", tmp_path / "g.h5"], names=path, says=says, inputs=[path], outputs=[tmp_path / "g.h5"]
    )


@pytest.mark.parametrize(
    "dt, says",
    [
        ("0", "dt must be a positive number"),
        ("-0.001", "dt must be a positive"),
        ("nan", "dt must be a positive"),
        ("0.5", "carries dt = 0.01 s"),
    ],
)
def test_dt_given_for_a_delaynir_file(nir_file, tmp_path, dt, says):
    refused(
        ["import", nir_file, "--dt", dt, "--out", tmp_path / "g.h5"],
        names="dt" if dt != "0.5" else nir_file,
        says=says,
        inputs=[nir_file],
        outputs=[tmp_path / "g.h5"],
    )


def _other_tool_file(tmp_path, nodes, edges):
    path = tmp_path / "other.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


OTHER = {
    "no dt": (
        lambda: (
            {
                "input": nir.Input(input_type={"input": np.array([2])}),
                "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                "output": nir.Output(output_type={"output": np.array([2])}),
            },
            [("input", "lif"), ("lif", "output")],
        ),
        None,
        "carries no time step",
    ),
    "delay not a multiple of dt": (
        lambda: (
            {
                "input": nir.Input(input_type={"input": np.array([2])}),
                "d": nir.Delay(delay=np.array([0.0015, 0.002])),
                "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                "output": nir.Output(output_type={"output": np.array([2])}),
            },
            [("input", "d"), ("d", "lif"), ("lif", "output")],
        ),
        "0.001",
        "not non-negative multiples of dt",
    ),
    "unsupported node": (
        lambda: (
            {
                "input": nir.Input(input_type={"input": np.array([2])}),
                "t": nir.Threshold(threshold=np.ones(2)),
                "output": nir.Output(output_type={"output": np.array([2])}),
            },
            [("input", "t"), ("t", "output")],
        ),
        "0.001",
        "has type Threshold",
    ),
    "weights that do not fit": (
        lambda: (
            {
                "input": nir.Input(input_type={"input": np.array([2])}),
                "w": nir.Linear(weight=np.ones((3, 5))),
                "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                "output": nir.Output(output_type={"output": np.array([2])}),
            },
            [("input", "w"), ("w", "lif"), ("lif", "output")],
        ),
        "0.001",
        "type mismatch",
    ),
}


@pytest.mark.parametrize("case", OTHER, ids=list(OTHER))
def test_other_tools_files(tmp_path, case):
    make, dt, says = OTHER[case]
    path = _other_tool_file(tmp_path, *make())
    argv = ["import", path, "--out", tmp_path / "g.h5"] + (["--dt", dt] if dt else [])
    refused(argv, names=path, says=says, inputs=[path], outputs=[tmp_path / "g.h5"])


def test_a_directory_or_nothing_as_nir(tmp_path):
    for path in (tmp_path, tmp_path / "absent.nir"):
        refused(
            ["import", path, "--out", tmp_path / "g.h5"], names=path, says="no such file", outputs=[tmp_path / "g.h5"]
        )
