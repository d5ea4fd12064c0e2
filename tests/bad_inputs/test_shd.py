"""Bad SHD-layout spike files through `delaynir data check` and `delaynir train`."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import refused, unsealed

SMALL = ["--hidden", "4", "--max-delay", "3", "--epochs", "1", "--batch-size", "8", "--device", "cpu"]


def _replace(key, value, **kwargs):
    def mutate(f):
        del f[key]
        f.create_dataset(key, data=value, **kwargs)

    return mutate


def _delete(key):
    def mutate(f):
        del f[key]

    return mutate


def _attr(key, value):
    def mutate(f):
        f.attrs[key] = value

    return mutate


def _sample(key, index, values):
    """Replace sample ``index`` of vlen dataset ``key`` with ``values``."""

    def mutate(f):
        data = f[key][()]
        data[index] = np.asarray(values, dtype=data[index].dtype)
        del f[key]
        f.create_dataset(key, data=data, dtype=h5py.vlen_dtype(data[index].dtype))

    return mutate


def _vlen(dtype, rows):
    out = np.empty(len(rows), dtype=object)
    out[:] = [np.asarray(r, dtype=dtype) for r in rows]
    return out


N = 60  # samples in the tiny training file
# case id: (mutation of a copy of a valid file, text the message must contain)
MUTATED = {
    "times missing": (_delete("spikes/times"), "missing dataset 'spikes/times'"),
    "units missing": (_delete("spikes/units"), "missing dataset 'spikes/units'"),
    "labels missing": (_delete("labels"), "missing dataset 'labels'"),
    "labels float": (_replace("labels", np.zeros(N)), "'labels' has dtype float64"),
    "labels 2-D": (_replace("labels", np.zeros((N, 2), np.int64)), "'labels' is not a one-dimensional dataset"),
    "labels a group": (lambda f: (f.__delitem__("labels"), f.create_group("labels")), "'labels' is not a one-dim"),
    "times fixed-length": (_replace("spikes/times", np.zeros(N)), "'spikes/times' is not variable-length"),
    "units float": (
        _replace("spikes/units", _vlen(np.float32, [[0.5]] * N), dtype=h5py.vlen_dtype(np.float32)),
        "'spikes/units' has dtype float32",
    ),
    "fewer labels": (_replace("labels", np.zeros(N - 1, np.int64)), "number of samples differs"),
    "negative label": (_replace("labels", np.full(N, -1)), "label -1 is negative"),
    "label without a name": (_replace("labels", np.full(N, 7)), "label 7 has no name"),
    "speaker float": (_replace("extra/speaker", np.zeros(N)), "'extra/speaker' has dtype float64"),
    "speaker count differs": (_replace("extra/speaker", np.zeros(3, np.int64)), "number of samples differs"),
    "labels declared huge": (
        _replace("labels", None, shape=(10**13,), dtype="i8", chunks=(1024,)),
        "dataset labels of shape (10000000000000,) would need",
    ),
    "keys 2-D": (_replace("extra/keys", np.zeros((3, 2))), "'extra/keys' is not a one-dimensional dataset"),
    "negative time": (_sample("spikes/times", 4, [-1.0]), "sample 4: negative spike time"),
    "nan time": (_sample("spikes/times", 5, [np.nan]), "sample 5: spike time nan is not finite"),
    "inf time": (_sample("spikes/times", 6, [np.inf]), "sample 6: spike time inf is not finite"),
    "unsorted times": (_sample("spikes/times", 7, [0.3, 0.1]), "sample 7: spike times not sorted"),
    "unit beyond channels": (_sample("spikes/units", 8, [10]), "sample 8: spike unit 10 out of the allowed range"),
    "empty sample": (
        lambda f: (_sample("spikes/times", 9, [])(f), _sample("spikes/units", 9, [])(f)),
        "sample 9: empty sample",
    ),
    "times and units differ": (_sample("spikes/times", 10, [0.1, 0.2, 0.3]), "sample 10: spikes/times has 3 events"),
    "no samples": (
        lambda f: [
            _replace(k, v, **kw)(f)
            for k, v, kw in (
                ("spikes/times", _vlen(np.float32, []), {"dtype": h5py.vlen_dtype(np.float32)}),
                ("spikes/units", _vlen(np.uint16, []), {"dtype": h5py.vlen_dtype(np.uint16)}),
                ("labels", np.zeros(0, np.int64), {}),
                ("extra/speaker", np.zeros(0, np.int64), {}),
            )
        ],
        "the file holds no samples",
    ),
    "n_channels zero": (_attr("n_channels", 0), "root attribute n_channels=0 is not a positive integer"),
    "n_channels text": (_attr("n_channels", "many"), "root attribute n_channels="),
    "n_channels float": (_attr("n_channels", 12.5), "root attribute n_channels=12.5 is not a positive integer"),
    "n_channels huge": (_attr("n_channels", 10**12), "would need 3.6 TiB of memory"),
    "duration negative": (_attr("duration", -1.0), "root attribute duration=-1.0 is not a positive number"),
    "duration nan": (_attr("duration", np.nan), "root attribute duration=nan is not a positive number"),
    "duration a list": (_attr("duration", [1.0, 2.0]), "root attribute duration="),
}

# case id: (bytes of the file made from the valid file's bytes, text the message must contain)
RAW = {
    "empty file": (lambda data: b"", "not an HDF5 file"),
    "text file": (lambda data: b"spikes,units\n0.1,3\n", "not an HDF5 file"),
    "truncated to 1 kB": (lambda data: data[:1024], "cannot be opened as HDF5"),
    "truncated to half": (lambda data: data[: len(data) // 2], "cannot be opened as HDF5"),
    "random bytes": (lambda data: np.random.default_rng(0).bytes(4096), "not an HDF5 file"),
    "HDF5 signature then zeros": (lambda data: data[:8] + bytes(4096), "cannot be opened as HDF5"),
}


@pytest.fixture
def spike_copy(tiny_data, tmp_path):
    return unsealed(Path(shutil.copy(tiny_data / "train.h5", tmp_path / "spikes.h5")))


@pytest.mark.parametrize("case", MUTATED, ids=list(MUTATED))
def test_malformed_spike_file(spike_copy, case):
    mutate, says = MUTATED[case]
    with h5py.File(spike_copy, "r+") as f:
        mutate(f)
    refused(["data", "check", spike_copy], names=spike_copy, says=says, inputs=[spike_copy])


@pytest.mark.parametrize("case", RAW, ids=list(RAW))
def test_damaged_spike_file(spike_copy, case):
    make, says = RAW[case]
    spike_copy.write_bytes(make(spike_copy.read_bytes()))
    refused(["data", "check", spike_copy], names=spike_copy, says=says, inputs=[spike_copy])


def test_a_directory_or_nothing_is_no_spike_file(tmp_path):
    refused(["data", "check", tmp_path], names=tmp_path, says="no such file")
    refused(["data", "check", tmp_path / "absent.h5"], names="absent.h5", says="no such file")


@pytest.mark.parametrize("case", ["duration 1e9 s", "one sample", "nan time", "label 10^12"])
def test_training_on_a_bad_file_leaves_no_run_directory(spike_copy, tmp_path, case):
    """The file is refused before the run directory exists (no config.toml left behind)."""
    with h5py.File(spike_copy, "r+") as f:
        if case == "duration 1e9 s":
            f.attrs["duration"] = 1e9
        elif case == "one sample":
            for key in ("spikes/times", "spikes/units", "labels", "extra/speaker"):
                data = f[key][()][:1]
                del f[key]
                f.create_dataset(key, data=data, dtype=h5py.vlen_dtype(data[0].dtype) if data.dtype == object else None)
        elif case == "nan time":
            _sample("spikes/times", 2, [np.nan])(f)
        else:
            del f["extra/keys"]
            _replace("labels", np.r_[10**12, f["labels"][1:].astype(np.int64)])(f)
    says = {
        "duration 1e9 s": "one sample of 100000000000 steps",
        "one sample": "at least 2 samples",
        "nan time": "sample 2: spike time nan",
        "label 10^12": "the labels in spikes.h5 give 1000000000001",
    }[case]
    argv = ["train", "--data", spike_copy, "--out", tmp_path / "run", *SMALL]
    refused(argv, names=spike_copy, says=says, inputs=[spike_copy], outputs=[tmp_path / "run"])
