"""Tests of delaynir.data: SHD-layout reading and validation, binning, splits, loaders, synthetic task."""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from delaynir.data import (
    SpikeDataset,
    SynthConfig,
    bin_events,
    generate_synthetic,
    make_loader,
    validate_file,
    validation_split,
    write_spike_file,
)
from delaynir.errors import ConfigError, DataFormatError

# ----------------------------------------------------------------------------- helpers


def write_raw(
    path,
    times,
    units,
    labels=None,
    *,
    speakers=None,
    keys=None,
    attrs=None,
    times_dtype=np.float64,
    units_dtype=np.int32,
    skip=(),
):
    """Write an SHD-layout file with plain h5py (not our writer); ``skip`` omits datasets."""
    with h5py.File(path, "w") as f:
        for key, data, dtype in (("spikes/times", times, times_dtype), ("spikes/units", units, units_dtype)):
            if key in skip:
                continue
            ds = f.create_dataset(key, shape=(len(data),), dtype=h5py.vlen_dtype(dtype))
            for i, values in enumerate(data):
                ds[i] = np.asarray(values, dtype=dtype)
        if labels is not None and "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.int64))
        if speakers is not None:
            f.create_dataset("extra/speaker", data=np.asarray(speakers))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array(keys, dtype="S"))
        for name, value in (attrs or {}).items():
            f.attrs[name] = value
    return path


GOOD_TIMES = [[0.001, 0.02, 0.02, 0.3], [0.0, 0.5], [0.1, 0.2, 0.25]]
GOOD_UNITS = [[0, 699, 3, 10], [5, 5], [1, 2, 3]]


def read_all(dataset):
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


# ----------------------------------------------------------------------------- binning


def test_bin_events_counts_crop_and_pad():
    times = np.array([0.0, 0.001, 0.005, 0.012, 0.025, 0.031, 0.049])
    units = np.array([0, 0, 1, 1, 2, 0, 3])
    expected = np.zeros((4, 4), np.float32)
    expected[0, 0] = 2  # two spikes in one bin are counted
    expected[0, 1] = expected[1, 1] = expected[2, 2] = expected[3, 0] = 1
    got = bin_events(times, units, dt=0.01, n_steps=4, n_channels=4)  # 0.049 s is in bin 4: cropped
    assert got.dtype == np.float32 and got.shape == (4, 4)
    np.testing.assert_array_equal(got, expected)

    padded = bin_events(times, units, dt=0.01, n_steps=6, n_channels=4)
    assert padded[4, 3] == 1 and padded[5].sum() == 0 and padded.sum() == len(times)
    np.testing.assert_array_equal(padded[:4], expected)


def test_bin_events_pooling_with_non_divisible_channel_count():
    times = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.015])
    units = np.array([0, 1, 2, 3, 4, 4])
    got = bin_events(times, units, dt=0.01, n_steps=2, n_channels=5, pool=2)
    np.testing.assert_array_equal(got, np.array([[2, 2, 1], [0, 0, 1]], np.float32))


def test_bin_events_edges_empty_and_bad_arguments():
    # a grid time stored as float32 (0.03 -> 0.02999999933) still lands in its own bin
    got = bin_events(np.array([0.03], np.float32), np.array([0]), dt=0.01, n_steps=5, n_channels=1)
    assert got[3, 0] == 1
    assert bin_events(np.array([]), np.array([], int), dt=0.01, n_steps=3, n_channels=2).shape == (3, 2)
    with pytest.raises(ConfigError, match="dt"):
        bin_events(np.array([0.1]), np.array([0]), dt=0.0, n_steps=3, n_channels=2)
    with pytest.raises(ConfigError, match="pool"):
        bin_events(np.array([0.1]), np.array([0]), dt=0.01, n_steps=3, n_channels=2, pool=0)
    with pytest.raises(DataFormatError, match="unit 2"):
        bin_events(np.array([0.1]), np.array([2]), dt=0.01, n_steps=3, n_channels=2)


# ----------------------------------------------------------------------------- reading any SHD-layout file


def test_reads_raw_h5py_file_without_extra_group(tmp_path):
    path = write_raw(tmp_path / "raw.h5", GOOD_TIMES, GOOD_UNITS, [2, 0, 1])  # float64 times, int32 units
    validate_file(path)
    ds = SpikeDataset(path, dt=0.01, n_steps=40, pool=100)
    assert (len(ds), ds.n_channels, ds.n_inputs, ds.n_classes) == (3, 700, 7, 3)
    assert ds.speakers is None and ds.keys is None and ds.duration is None
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [2, 0, 1]
    frames, label = ds[0]
    assert frames.dtype == torch.float32 and frames.shape == (40, 7) and label == 2
    expected = bin_events(
        np.array(GOOD_TIMES[0]), np.array(GOOD_UNITS[0]), dt=0.01, n_steps=40, n_channels=700, pool=100
    )
    np.testing.assert_array_equal(frames.numpy(), expected)
    # (0.001 s, 0), (0.02 s, 699 // 100 = 6), (0.02 s, 3 // 100 = 0), (0.3 s, 10 // 100 = 0)
    assert frames[0, 0] == frames[2, 6] == frames[2, 0] == frames[30, 0] == 1 and frames.sum() == 4
    assert SpikeDataset(path, n_steps=20).n_inputs == 700
    assert SpikeDataset(path, n_steps=20, n_channels=800).n_channels == 800  # explicit override


def test_channel_count_from_root_attribute_and_override(tmp_path):
    path = write_raw(
        tmp_path / "attr.h5", [[0.0, 0.1]], [[0, 11]], [0], speakers=np.int32([3]), attrs={"n_channels": 12}
    )
    ds = SpikeDataset(path)
    assert ds.n_channels == 12 and ds.speakers.tolist() == [3]
    with pytest.raises(DataFormatError, match=r"sample 0: spike unit 11 out of the allowed range 0\.\.9"):
        SpikeDataset(path, n_channels=10)  # the argument overrides the attribute


def test_writer_round_trip_and_layout(tmp_path):
    path = write_spike_file(
        tmp_path / "ours.h5",
        GOOD_TIMES,
        [np.array(u) for u in GOOD_UNITS],
        [1, 0, 1],
        speakers=[4, 4, 7],
        keys=["zero", "one"],
        n_channels=700,
        duration=0.5,
    )
    with h5py.File(path, "r") as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float32
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["labels"].dtype == np.uint8 and f["extra/keys"][()].tolist() == [b"zero", b"one"]
        assert f.attrs["n_channels"] == 700
    ds = SpikeDataset(path, n_steps=60)
    assert ds.keys == ["zero", "one"] and ds.n_classes == 2 and ds.speakers.tolist() == [4, 4, 7]
    assert ds.duration == 0.5
    raw = SpikeDataset(write_raw(tmp_path / "raw.h5", GOOD_TIMES, GOOD_UNITS, [1, 0, 1]), n_steps=60)
    torch.testing.assert_close(read_all(ds), read_all(raw))


def test_writer_refuses_invalid_data_and_existing_file(tmp_path):
    with pytest.raises(ConfigError, match="sample 1: spike unit 700"):
        write_spike_file(tmp_path / "bad.h5", [[0.1], [0.2]], [np.array([1]), np.array([700])], [0, 0])
    assert not (tmp_path / "bad.h5").exists()
    path = write_spike_file(tmp_path / "a.h5", [[0.1]], [np.array([1])], [0])
    with pytest.raises(ConfigError, match="already exists"):
        write_spike_file(path, [[0.2]], [np.array([2])], [0])
    write_spike_file(path, [[0.2]], [np.array([2])], [0], overwrite=True)
    assert SpikeDataset(path, n_steps=30)[0][0][20, 2] == 1


def test_interrupted_write_leaves_no_file(tmp_path):
    path = tmp_path / "partial.h5"
    with pytest.raises(TypeError):  # h5py cannot store an arbitrary object as an attribute
        write_spike_file(path, [[0.1]], [np.array([1])], [0], attrs={"bad": object()})
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- validation


def _case_files(tmp_path):
    """name -> (path, expected sample index or None for file-level, expected problem regex)."""
    t, u, labels = GOOD_TIMES, GOOD_UNITS, [0, 1, 0]
    d = tmp_path
    return {
        "missing times": (
            write_raw(d / "a.h5", t, u, labels, skip=("spikes/times",)),
            None,
            r"missing dataset 'spikes/times' \(the layout expects spikes/times: .*seconds",
        ),
        "missing labels": (write_raw(d / "b.h5", t, u, labels, skip=("labels",)), None, r"missing dataset 'labels'"),
        "times vs units length": (
            write_raw(d / "c.h5", t, [u[0], u[1], [1, 2]], labels),
            2,
            r"spikes/times has 3 events but spikes/units has 2",
        ),
        "sample counts": (
            write_raw(d / "d.h5", t, u, [0, 1]),
            None,
            r"number of samples differs.*spikes/times has 3.*labels has 2",
        ),
        "unit 700": (
            write_raw(d / "e.h5", t, [u[0], u[1], [1, 700, 3]], labels),
            2,
            r"spike unit 700 out of the allowed range 0\.\.699",
        ),
        "negative time": (write_raw(d / "f.h5", [t[0], [-0.5, 0.1], t[2]], u, labels), 1, r"negative spike time -0\.5"),
        "unsorted": (
            write_raw(d / "g.h5", [t[0], t[1], [0.1, 0.25, 0.2]], u, labels),
            2,
            r"not sorted: 0\.2 s follows 0\.25 s",
        ),
        "nan": (write_raw(d / "h.h5", [[0.001, np.nan, 0.02, 0.3], t[1], t[2]], u, labels), 0, r"nan is not finite"),
        "empty": (write_raw(d / "i.h5", [t[0], [], t[2]], [u[0], [], u[2]], labels), 1, r"empty sample"),
        "negative label": (write_raw(d / "j.h5", t, u, [0, 1, -1]), 2, r"label -1 is negative"),
        "label without name": (write_raw(d / "k.h5", t, u, [0, 2, 0], keys=[b"a", b"b"]), 1, r"label 2 has no name"),
        "bad n_channels attribute": (
            write_raw(d / "l.h5", t, u, labels, attrs={"n_channels": -3}),
            None,
            r"root attribute n_channels=.*-3.* not a positive integer",
        ),
        "bad duration attribute": (
            write_raw(d / "n.h5", t, u, labels, attrs={"duration": -1.0}),
            None,
            r"root attribute duration=.*-1.* not a positive number",
        ),
        "float units": (
            write_raw(d / "m.h5", t, u, labels, units_dtype=np.float32),
            None,
            r"'spikes/units' has dtype float32",
        ),
    }


def test_each_malformed_case_is_reported_with_file_sample_and_problem(tmp_path):
    for name, (path, sample, problem) in _case_files(tmp_path).items():
        with pytest.raises(DataFormatError) as info:
            validate_file(path)
        message = str(info.value)
        lines = [line for line in message.splitlines() if re.search(problem, line)]
        assert lines, f"{name}: {problem!r} not in\n{message}"
        assert str(path) in lines[0], name
        if sample is not None:
            assert f"sample {sample}: " in lines[0], name
        with pytest.raises(DataFormatError):  # the dataset validates by default
            SpikeDataset(path)


def test_missing_or_non_hdf5_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere\.h5: no such file"):
        validate_file(tmp_path / "nothere.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataFormatError, match=r"notes\.h5: not an HDF5 file"):
        SpikeDataset(text)


def test_several_problems_reported_at_once_and_capped(tmp_path):
    path = write_raw(tmp_path / "multi.h5", [[0.2, 0.1], [-1.0], [np.inf]], [[0, 900], [1], []], [0, -2, 1])
    with pytest.raises(DataFormatError) as raised:
        validate_file(path)
    message = str(raised.value)
    for expected in (
        "sample 0: spike times not sorted",
        "sample 0: spike unit 900",
        "sample 1: negative spike time",
        "sample 1: label -2",
        "sample 2: spikes/times has 1 events but spikes/units has 0",
        "sample 2: spike time inf is not finite",
    ):
        assert expected in message, expected
    assert message.startswith(f"{path}: 6 problem(s)")

    many = write_raw(tmp_path / "many.h5", [[0.1]] * 30, [[800]] * 30, [0] * 30)
    with pytest.raises(DataFormatError) as raised:
        validate_file(many)
    message = str(raised.value)
    assert "30 problem(s)" in message and "... and 10 more" in message
    assert message.count("spike unit 800") == 20


def test_unvalidated_dataset_still_names_file_and_sample(tmp_path):
    path = write_raw(tmp_path / "late.h5", GOOD_TIMES, [[0, 1, 2, 3], [1, 1], [2, 750, 3]], [0, 0, 0])
    ds = SpikeDataset(path, validate=False, cache=False)
    ds[0]
    with pytest.raises(DataFormatError, match=r"late\.h5: sample 2: spike unit 750"):
        ds[2]


# ----------------------------------------------------------------------------- dataset behaviour


def test_dataset_pickles_and_works_in_worker_processes(small_synth_files):
    ds = SpikeDataset(small_synth_files[0], dt=0.01, n_steps=60, cache=False)
    first = ds[0][0]  # opens the HDF5 handle
    clone = pickle.loads(pickle.dumps(ds))
    torch.testing.assert_close(clone[0][0], first)
    assert clone.labels.tolist() == ds.labels.tolist()
    loader = make_loader(ds, np.arange(len(ds)), batch_size=16, shuffle=False, num_workers=2)
    x = torch.cat([xb for xb, _ in loader], dim=1)
    torch.testing.assert_close(x, read_all(ds).transpose(0, 1))


def test_cache_is_exact_and_warns_once_on_saturation(tmp_path, caplog):
    path = write_raw(tmp_path / "dense.h5", [np.full(300, 0.005), [0.01, 0.02]], [np.zeros(300), [1, 2]], [0, 1])
    exact = SpikeDataset(path, cache=False)
    cached = SpikeDataset(path, cache="auto")
    assert cached.cached and not exact.cached
    assert exact[0][0][0, 0] == 300
    with caplog.at_level(logging.WARNING, logger="delaynir.data.shd"):
        assert cached[0][0][0, 0] == 255 and cached[0][0][0, 0] == 255
        cached.preload()
    assert sum("saturates" in r.getMessage() for r in caplog.records) == 1
    torch.testing.assert_close(cached[1][0], exact[1][0])


def test_bad_dataset_arguments(small_synth_files):
    with pytest.raises(ConfigError, match="cache"):
        SpikeDataset(small_synth_files[0], cache="yes")
    with pytest.raises(ConfigError, match="n_steps"):
        SpikeDataset(small_synth_files[0], n_steps=0)
    with pytest.raises(IndexError):
        SpikeDataset(small_synth_files[0])[10_000]


# ----------------------------------------------------------------------------- splits and loaders


def test_speaker_split_holds_out_whole_speakers_deterministically(small_synth_files):
    ds = SpikeDataset(small_synth_files[0], n_steps=60)
    train, val = validation_split(ds, fraction=0.25, seed=1)
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(ds)))
    held, kept = set(ds.speakers[val]), set(ds.speakers[train])
    assert held and kept and not held & kept  # whole speakers, at least one, never all
    again = validation_split(ds, fraction=0.25, seed=1)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    held_by_seed = {frozenset(ds.speakers[validation_split(ds, fraction=0.25, seed=s)[1]]) for s in range(8)}
    assert len(held_by_seed) > 1  # the seed chooses the speakers
    tiny_fraction = validation_split(ds, fraction=0.01, seed=0)[1]
    assert len(set(ds.speakers[tiny_fraction])) == 1


def test_random_split_without_speakers(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 20)
    times = [np.sort(rng.uniform(0, 0.5, 5)) for _ in labels]
    path = write_raw(tmp_path / "nospk.h5", times, [rng.integers(0, 700, 5) for _ in labels], labels)
    ds = SpikeDataset(path)
    train, val = validation_split(ds, fraction=0.2, seed=5)
    assert len(val) == 12 and np.bincount(ds.labels[val]).tolist() == [4, 4, 4]  # stratified
    assert not set(train) & set(val) and len(train) + len(val) == 60
    assert np.array_equal(validation_split(ds, fraction=0.2, seed=5)[1], val)
    assert not np.array_equal(validation_split(ds, fraction=0.2, seed=6)[1], val)
    with pytest.raises(ConfigError, match="fraction"):
        validation_split(ds, fraction=1.0)


def test_loader_is_time_first_and_deterministic(small_synth_files):
    ds = SpikeDataset(small_synth_files[0], n_steps=60)
    train, _ = validation_split(ds, seed=0)
    batches = list(make_loader(ds, train, batch_size=8, shuffle=True, seed=4))
    x, y = batches[0]
    assert x.shape == (60, 8, ds.n_inputs) and x.dtype == torch.float32
    assert y.shape == (8,) and y.dtype == torch.int64
    order = torch.cat([yb for _, yb in batches])
    assert sorted(order.tolist()) == sorted(ds.labels[train].tolist())
    again = torch.cat([yb for _, yb in make_loader(ds, train, batch_size=8, shuffle=True, seed=4)])
    assert torch.equal(order, again)
    plain = list(make_loader(ds, train[:10], batch_size=4, shuffle=False, drop_last=True))
    assert len(plain) == 2 and torch.equal(plain[0][0][:, 1], ds[train[1]][0])


# ----------------------------------------------------------------------------- synthetic task


def _clean_config(**overrides):
    return SynthConfig(n_channels=16, n_classes=4, n_train=80, n_test=20, jitter=0.0, noise_rate=0.0, **overrides)


def test_synthetic_task_is_rate_matched_and_timing_coded(tmp_path):
    config = _clean_config()
    train, _ = generate_synthetic(tmp_path, config)
    with h5py.File(train, "r") as f:
        units = list(f["spikes/units"][()])
        times = list(f["spikes/times"][()])
        labels = f["labels"][()]
    counts = np.stack([np.bincount(u, minlength=16) for u in units])
    assert (counts == 1).all()  # exactly one pattern spike per channel in every sample of every class
    shapes = []
    for t, u in zip(times, units):
        per_channel = np.empty(16)
        per_channel[u] = t
        relative = per_channel - per_channel.min()
        shapes.append(relative / relative.max())  # onset and speaker tempo removed
    shapes = np.array(shapes)
    means = np.stack([shapes[labels == c].mean(0) for c in range(4)])
    within = max(np.abs(shapes[labels == c] - means[c]).max() for c in range(4))
    between = min(np.abs(means[a] - means[b]).max() for a in range(4) for b in range(a + 1, 4))
    assert within < 1e-3  # one timing template per class, up to onset and tempo
    assert between > 0.2  # classes differ in timing (at least one band moves by a slot)
    # the bands that fire together are the same in every class: no class-specific coincidences
    together = [np.abs(m[:, None] - m[None, :]) < 1e-3 for m in means]  # (channel, channel) co-firing
    assert all(np.array_equal(t, together[0]) for t in together) and together[0].sum() > 16


def test_synthetic_defaults_match_dataset_defaults(tmp_path):
    train, test = generate_synthetic(tmp_path)  # default config: 1000 + 300 samples of 1 s
    ds = SpikeDataset(train)  # default grid: 100 steps of 10 ms
    assert (len(ds), ds.n_inputs, ds.n_classes, len(SpikeDataset(test))) == (1000, 40, 10, 300)
    assert SynthConfig().n_steps == ds.n_steps and ds.duration == SynthConfig().duration
    assert np.bincount(ds.labels).tolist() == [100] * 10
    assert set(ds.speakers.tolist()) == set(range(8))
    validate_file(test)


def test_synthetic_is_deterministic_by_seed_and_refuses_overwrite(tmp_path):
    config = _clean_config(seed=7)
    a = generate_synthetic(tmp_path / "a", config)
    b = generate_synthetic(tmp_path / "b", config)
    c = generate_synthetic(tmp_path / "c", _clean_config(seed=8))
    assert a[0].read_bytes() == b[0].read_bytes() and a[1].read_bytes() == b[1].read_bytes()
    assert not torch.equal(read_all(SpikeDataset(a[0], n_steps=60)), read_all(SpikeDataset(c[0], n_steps=60)))
    with pytest.raises(ConfigError, match="already exist"):
        generate_synthetic(tmp_path / "a", config)
    generate_synthetic(tmp_path / "a", _clean_config(seed=8), overwrite=True)
    assert a[0].read_bytes() == c[0].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["test.h5", "train.h5"]  # no temp files left


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"n_classes": 1}, "n_classes"),
        ({"n_channels": 0}, "n_channels"),
        ({"dt": 0.0}, "dt"),
        ({"jitter": -1.0}, "jitter"),
        ({"noise_rate": float("nan")}, "noise_rate"),
        ({"seed": -1}, "seed"),
        ({"n_train": 2.5}, "n_train"),
        ({"spread": 200}, "does not fit"),
        ({"n_groups": 1}, "n_groups"),
        ({"n_groups": 50}, "must not exceed n_channels"),
        ({"n_classes": 200}, "firing orders"),
    ],
)
def test_synth_config_rejects_bad_values(overrides, message):
    with pytest.raises(ConfigError, match=message):
        SynthConfig(**overrides)


def test_the_data_layer_depends_on_no_training_module():
    """data/ sits below training: it imports neither the training settings nor the loop (config holds its default)."""
    from delaynir.data.split import VAL_FRACTION
    from delaynir.train.config import TrainConfig

    layer = Path(__file__).resolve().parents[1] / "delaynir" / "data"
    above = re.compile(r"^\s*(from|import) delaynir\.(config|train|run|nn|compile)\b", re.M)
    assert [p.name for p in sorted(layer.glob("*.py")) if above.search(p.read_text())] == []
    assert TrainConfig.val_fraction == VAL_FRACTION
