"""Data-parallel training on 2 CPU processes (gloo): identical ranks, identical pruning masks, one set of
files, equality with a single-process run over the same global batches, resume, and the torchrun launch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from delaynir.data import make_loader
from delaynir.train import checkpoints
from delaynir.train.config import dumps_toml, make_config
from delaynir.train.loop import train

# 45 training samples in global batches of 16: 16, 16, 13 (uneven shards, as in real runs)
PRUNED = {
    "hidden": [12],
    "max_delay": 8,
    "epochs": 2,
    "batch_size": 16,
    "lr": 5e-3,
    "dropout": 0.0,
    "val_fraction": 0.25,
    "n_steps": 40,
    "batchnorm": False,
    "sparsity": 0.75,
    "prune": "deepr-rigl",
}
# dropout, BatchNorm and Langevin noise: ranks draw different masks, yet must stay identical
NOISY = dict(PRUNED, dropout=0.3, batchnorm=True, prune="deepr-random", prune_temperature=1e-4, structure="taps")
FILES = sorted([checkpoints.CONFIG, checkpoints.METRICS, checkpoints.CHECKPOINT, checkpoints.MODEL])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, ports: list[int], data: Path, root: Path) -> None:
    """One rank: the runs below, recording its pruning state after every step and its model after every epoch."""
    os.environ.update(MASTER_ADDR="127.0.0.1", RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import delaynir.train.loop as train_module
    from delaynir.nn.rewiring import Rewiring

    masks, states, calls = [], {}, []
    real_after_step, real_evaluate = Rewiring.after_step, train_module.evaluate_model

    def after_step(self, optimizer, step):
        real_after_step(self, optimizer, step)
        masks.append(
            [(layer.candidate.clone(), layer.alive.clone(), layer.theta.detach().clone()) for layer in self.layers]
        )

    def evaluate(model, *args, **kwargs):
        states[current] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        calls.append(current)
        if calls.count("crashed") == 2:  # killed in epoch 2 of the third run, before its checkpoint
            raise KeyboardInterrupt
        return real_evaluate(model, *args, **kwargs)

    Rewiring.after_step, train_module.evaluate_model = after_step, evaluate
    for current, values in [("pruned", PRUNED), ("noisy", NOISY), ("crashed", PRUNED)]:
        os.environ["MASTER_PORT"] = str(ports.pop())  # a fresh rendezvous per process group
        try:
            train(make_config(values), data, root / current)
        except KeyboardInterrupt:
            os.environ["MASTER_PORT"] = str(ports.pop())
            train(make_config(values), data, root / current, resume=True)
            states["resumed"] = states.pop("crashed")
    torch.save({"masks": masks, "states": states}, root / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    ports = sorted({_free_port() for _ in range(8)})[:4]
    mp.spawn(_worker, args=(2, ports, tiny_data, root), nprocs=2, join=True)
    return root, [torch.load(root / f"rank{r}.pt") for r in range(2)]


def test_sharded_loader_covers_the_single_process_batches(tiny_data):
    from delaynir.data import SpikeDataset

    ds = SpikeDataset(tiny_data / "train.h5", dt=0.01, n_steps=40, pool=1)
    idx = list(range(0, 45))
    single = [y for _, y in make_loader(ds, idx, batch_size=16, shuffle=True, seed=5)]
    shards = [
        [y for _, y in make_loader(ds, idx, batch_size=16, shuffle=True, seed=5, rank=r, world_size=2)]
        for r in range(2)
    ]
    assert [len(y) for y in single] == [16, 16, 13]
    assert [len(y) for y in shards[0]] == [8, 8, 6] and [len(y) for y in shards[1]] == [8, 8, 7]
    for whole, a, b in zip(single, *shards):
        assert torch.equal(whole, torch.cat([a, b]))
    padded = make_loader(ds, idx[:3], batch_size=2, shuffle=False, rank=0, world_size=2)
    assert [len(y) for _, y in padded] == [1, 1]  # every rank runs every step; the empty share is padded
    assert [
        len(y) for _, y in make_loader(ds, idx[:3], batch_size=2, shuffle=False, rank=0, world_size=2, pad_shards=False)
    ] == [1]


def test_ranks_hold_identical_parameters_and_masks_after_every_step(two_ranks):
    _, (r0, r1) = two_ranks
    assert len(r0["masks"]) == len(r1["masks"]) > 0
    for step0, step1 in zip(r0["masks"], r1["masks"]):
        for (c0, a0, t0), (c1, a1, t1) in zip(step0, step1):
            assert torch.equal(c0, c1) and torch.equal(a0, a1) and torch.equal(t0, t1)
    assert r0["states"].keys() == r1["states"].keys() == {"pruned", "noisy", "resumed"}
    for run in r0["states"]:
        for k, v in r0["states"][run].items():
            assert torch.equal(v, r1["states"][run][k]), (run, k)


def test_only_rank_zero_writes_one_set_of_files(two_ranks):
    root, _ = two_ranks
    for run in ("pruned", "noisy", "crashed"):
        assert sorted(p.name for p in (root / run).iterdir()) == FILES
        assert [m["epoch"] for m in checkpoints.read_metrics(root / run)] == [1, 2]
    ckpt = checkpoints.load_pt(root / "pruned" / checkpoints.CHECKPOINT)
    assert len(ckpt["rng_ranks"]) == 2 and not any(k.startswith("module.") for k in ckpt["model"])


def test_two_processes_equal_one_over_the_same_global_batches(two_ranks, tiny_data, tmp_path):
    root, _ = two_ranks
    train(make_config(PRUNED), tiny_data, tmp_path / "single")
    single = checkpoints.load_pt(tmp_path / "single" / checkpoints.CHECKPOINT)
    double = checkpoints.load_pt(root / "pruned" / checkpoints.CHECKPOINT)
    for k, v in single["model"].items():
        if v.is_floating_point():
            torch.testing.assert_close(double["model"][k], v, rtol=1e-5, atol=1e-5, msg=k)
        else:
            assert torch.equal(double["model"][k], v), k  # the same connections survive
    for a, b in zip(checkpoints.read_metrics(tmp_path / "single"), checkpoints.read_metrics(root / "pruned")):
        assert a["val_accuracy"] == b["val_accuracy"] and a["sigma"] == b["sigma"] and a["lr"] == b["lr"]
        assert a["train_accuracy"] == b["train_accuracy"] and a["regrown"] == b["regrown"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)


def test_distributed_resume_equals_an_uninterrupted_run(two_ranks):
    root, (r0, _) = two_ranks
    for k, v in checkpoints.load_pt(root / "pruned" / checkpoints.CHECKPOINT)["model"].items():
        assert torch.equal(checkpoints.load_pt(root / "crashed" / checkpoints.CHECKPOINT)["model"][k], v), k
    for k, v in r0["states"]["pruned"].items():
        assert torch.equal(r0["states"]["resumed"][k], v), k


def test_cli_under_torchrun(tiny_data, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip("torchrun is not installed beside this Python")
    config = tmp_path / "tiny.toml"
    config.write_text(dumps_toml(dict(PRUNED, epochs=1, device="cpu")))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "delaynir",
            "train",
            "--data",
            str(tiny_data),
            "--out",
            str(tmp_path / "run"),
            "--config",
            str(config),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == FILES
