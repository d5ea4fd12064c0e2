"""The public API: ``import delaynir`` is cheap, every public name resolves, and the README's example runs."""

import subprocess
import sys
from pathlib import Path

import pytest

import delaynir

REPO = Path(__file__).resolve().parent.parent


def test_importing_the_package_loads_no_torch():
    code = "import sys, delaynir; assert 'torch' not in sys.modules, 'torch imported'; print(len(delaynir.__all__))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", [n for n in delaynir.__all__ if not n.startswith("__")])
def test_every_public_name_resolves_to_the_object_of_its_module(name):
    value = getattr(delaynir, name)
    assert getattr(value, "__name__", name) == name and name in dir(delaynir)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        delaynir.nope  # noqa: B018


def test_the_use_from_python_example_trains_compiles_exports_and_verifies(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "use_from_python.py"), str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert {"model.delaygraph.h5", "model.nir", "model.onnx"} <= {p.name for p in tmp_path.iterdir()}
    for sim in ("norse", "snntorch", "onnxruntime"):
        assert f"{sim}: same prediction 100.00%, identical spikes {{'hidden1': 1.0}}" in done.stdout, done.stdout
    loaded = delaynir.load_graph(tmp_path / "model.delaygraph.h5")
    assert loaded.n_synapses > 0 and loaded.target == "int8"
