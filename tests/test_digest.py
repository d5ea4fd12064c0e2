"""Content digests: a flipped byte anywhere in the weight or delay data of a DelayGraph, NIR, netx or PyNN file
delaynir wrote is reported on load, unless it changes no value read (a bit of gzip-compressed NIR data the decoder
never uses); files without a digest (other tools', earlier versions') load as before."""

import json
import shutil

import h5py
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delaynir.cli import main
from delaynir.common.h5 import DIGEST_ATTR, sealed
from delaynir.errors import ExportError, GraphFormatError, NIRImportError
from delaynir.export.nir_io import read_nir
from delaynir.ir.graph_io import load_graph
from delaynir.targets.loihi2 import executor as lava_executor
from delaynir.targets.spinnaker import nest_executor

TOOLS = {"netx": "need_lava", "PyNN": "need_nest"}  #: the fixture that skips a kind where its tool is missing


def _regions(path, names: tuple[str, ...]) -> list[tuple[int, int]]:
    """(file offset, bytes) of the stored data of every dataset whose name ends with one of ``names``."""
    found: list[tuple[int, int]] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] in names and obj.size:
            if obj.chunks is None:
                found.append((obj.id.get_offset(), obj.id.get_storage_size()))
            else:
                for i in range(obj.id.get_num_chunks()):
                    info = obj.id.get_chunk_info(i)
                    found.append((info.byte_offset, info.size))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return found


@pytest.fixture(scope="module")
def files(small_run, tmp_path_factory):
    """The four formats of one compiled model, each with the loader that must notice a change and its error."""
    out = tmp_path_factory.mktemp("sealed")
    int8, loihi2 = out / "int8.h5", out / "loihi2.h5"
    assert main(["-q", "compile", str(small_run), "--target", "int8", "--out", str(int8)]) == 0
    assert main(["-q", "compile", str(small_run), "--target", "loihi2", "--out", str(loihi2)]) == 0
    for fmt, graph, name in [("nir", int8, "m.nir"), ("netx", loihi2, "m.netx.h5"), ("pynn", int8, "m.pynn.h5")]:
        assert main(["-q", "export", str(graph), "--format", fmt, "-o", str(out / name)]) == 0
    return {
        "DelayGraph": (int8, ("weight", "delay"), load_graph, GraphFormatError),
        "NIR": (out / "m.nir", ("weight", "delay"), read_nir, NIRImportError),
        "netx": (out / "m.netx.h5", ("weight", "delay"), lava_executor.load, ExportError),
        "PyNN": (out / "m.pynn.h5", ("weight", "delay"), nest_executor.load, ExportError),
    }


@pytest.mark.parametrize("kind", ["DelayGraph", "NIR", "netx", "PyNN"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_flipped_byte_in_the_weights_or_delays_is_reported_on_load(files, kind, data, tmp_path, request):
    if kind in TOOLS:  # an intact file is loaded to the end, where the tool's environment is looked up
        request.getfixturevalue(TOOLS[kind])
    path, names, load, error = files[kind]
    regions = _regions(path, names)
    assert regions, f"no {names} data found in {path}"
    offset, size = data.draw(st.sampled_from(regions))
    position = offset + data.draw(st.integers(0, size - 1))
    copy = tmp_path / f"{kind}-{position}{path.suffix}"
    shutil.copy(path, copy)
    raw = bytearray(copy.read_bytes())
    raw[position] ^= data.draw(st.integers(1, 255))
    copy.write_bytes(bytes(raw))
    try:
        load(copy)
    except error as refused:
        assert str(copy) in str(refused)
    else:  # a flip the file's compression makes moot (an unused Huffman code): every value read is the original
        assert sealed(copy) is True


@pytest.mark.parametrize("kind", ["DelayGraph", "NIR", "netx", "PyNN"])
def test_every_file_is_sealed_and_one_without_a_digest_still_loads(files, kind, tmp_path, request):
    if kind in TOOLS:
        request.getfixturevalue(TOOLS[kind])
    path, _, load, _ = files[kind]
    assert sealed(path) is True
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    with h5py.File(copy, "r+") as f:
        del f.attrs[DIGEST_ATTR]
    assert sealed(copy) is None
    load(copy)


def test_data_check_says_whether_a_file_carries_a_digest_and_refuses_one_that_no_longer_matches(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["-q", "data", "synth", "--out", str(out), "--train", "6", "--test", "4"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(out / "test.h5"), "--json"]) == 0
    assert '"content_digest": "matches"' in capsys.readouterr().out
    with h5py.File(out / "train.h5", "r+") as f:
        del f.attrs[DIGEST_ATTR]  # as another tool writes it
    assert main(["data", "check", str(out / "train.h5"), "--json"]) == 0
    assert '"content_digest": "none"' in capsys.readouterr().out
    with h5py.File(out / "test.h5", "r+") as f:
        f["labels"][0] = (f["labels"][0] + 1) % 2
    assert main(["data", "check", str(out / "test.h5")]) == 2
    assert "its contents changed after delaynir wrote it" in capsys.readouterr().err


def test_verify_says_whether_the_graph_file_carries_a_digest(files, small_run, tmp_path, capsys):
    graph = files["DelayGraph"][0]
    data = str(small_run.parent / "data" / "test.h5")
    assert main(["verify", str(graph), "--data", data, "--sims", "reference", "--samples", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["content_digest"] == "matches"
    copy = shutil.copy(graph, tmp_path / "other.h5")
    with h5py.File(copy, "r+") as f:
        del f.attrs[DIGEST_ATTR]
    assert main(["verify", str(copy), "--data", data, "--sims", "reference", "--samples", "2"]) == 0
    assert "the file's content digest: none" in capsys.readouterr().out
