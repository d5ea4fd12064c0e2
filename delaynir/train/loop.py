"""Training by backpropagation through time (BPTT) with Adam.

Per batch: forward with Gaussian delay kernels of width σ(s), loss = cross-entropy of
Σ_t softmax(readout), Adam step (delay positions at ``position_lr_factor`` × the weights'
learning rate), positions clamped to [0, D − 1]. σ anneals geometrically per batch,

    σ(s) = σ0 · (σ_final / σ0)^min(1, s / (sigma_fraction · S)),   S = total batches,

and stays at σ_final afterwards. After every epoch the model is validated with rounded
integer delays (the deployed form) on the validation split of the *training* file; the
best epoch by validation accuracy is kept as ``model.pt``. A test file is never read here.

Under ``torchrun`` with several processes, ``train`` is one rank of a data-parallel run
(``delaynir.train.distributed``): ``batch_size`` stays the global batch, each rank trains on its share
of every global batch with gradients averaged so that they equal the global batch's, and only
rank 0 writes the run directory. Steps, σ and learning-rate schedules do not depend on the
number of processes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from delaynir.common import outputs
from delaynir.common.memory import check_memory
from delaynir.data import make_loader, validation_split
from delaynir.data.split import shard_bounds
from delaynir.errors import CheckpointError, ConfigError, reason
from delaynir.ir.neuron_kinds import predictions_of
from delaynir.nn.model import DelaySNN, readout_loss
from delaynir.nn.rewiring import Rewiring, active_connections
from delaynir.numerics.number_formats import NumberFormat
from delaynir.numerics.quantize import WeightGrid
from delaynir.train import checkpoints, distributed
from delaynir.train.config import TrainConfig, dumps_toml, load_config, make_config
from delaynir.train.run_dir import Run, data_file, input_encoding, model_payload, open_dataset, target_arithmetic

log = logging.getLogger(__name__)

#: one-cycle schedule: start at lr / DIV, peak at lr after PEAK of the steps, end at lr / (DIV · FINAL_DIV)
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV, ONE_CYCLE_PEAK = 25.0, 1e4, 0.3


def sigma_at(step: int, total_steps: int, config: TrainConfig) -> float:
    """The Gaussian width (steps) at global batch ``step`` of ``total_steps``."""
    sigma0 = config.sigma_init or config.max_delay / 2
    progress = min(1.0, step / max(1.0, config.sigma_fraction * total_steps))
    return sigma0 * (config.sigma_final / sigma0) ** progress


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available; use --device cpu or auto")
    return torch.device(name)


@dataclass
class _State:
    model: DelaySNN
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    weight_grid: WeightGrid | None = None  # fine-tuning: the grid the weights are fake-quantised to
    number_format: dict[str, Any] | None = (
        None  # fine-tuning: the number format record (delaynir.numerics.number_formats)
    )
    epoch: int = 0  # epochs finished
    best_val: float = -1.0


def build_model(config: TrainConfig, n_inputs: int, n_outputs: int) -> DelaySNN:
    return DelaySNN(config.model_config(n_inputs, n_outputs))


def build_rewiring(model: DelaySNN, config: TrainConfig, ctx: distributed.DistContext | None = None) -> Rewiring | None:
    """DEEP R + RigL / random regrowth for the model's sparse layers; None without pruning.

    Its randomness is seeded per step from ``config.seed`` and, with ``ctx``, RigL's candidate
    gradients are averaged over processes, so every process makes the same decisions.
    """
    if config.prune == "none":
        return None
    return Rewiring(
        model.sparse_layers(),
        method=config.prune,
        l1=config.prune_l1,
        temperature=config.prune_temperature,
        magnitude=config.regrow_magnitude,
        interval=config.rewire_interval,
        pool=config.regrow_pool,
        seed=config.seed,
        average=ctx.average_ if ctx is not None and ctx.enabled else None,
    )


def _build_state(
    config: TrainConfig,
    n_inputs: int,
    n_outputs: int,
    steps_per_epoch: int,
    device: torch.device,
    data_info: dict[str, Any] | None = None,
) -> _State:
    model = build_model(config, n_inputs, n_outputs)
    grid, number_format = target_arithmetic(config, data_info)
    if grid is not None:
        assert number_format is not None, "target_arithmetic gives both or neither"
        model.quantize_as(grid, NumberFormat.from_record(number_format))
    if config.init_from:
        model.load_state_dict(checkpoints.load_pt(config.init_from, checkpoints.MODEL_KEYS)["model"])
    model.to(device)
    weights, positions = model.parameter_groups()
    if config.quantize_target:  # delays stay at their rounded values
        for p in positions:
            p.requires_grad_(False)
        positions = []
    groups = [{"params": weights, "lr": config.lr, "weight_decay": config.weight_decay}]
    if positions:
        groups.append({"params": positions, "lr": config.lr * config.position_lr_factor, "weight_decay": 0.0})
    optimizer = torch.optim.Adam(groups)
    total = config.epochs * steps_per_epoch
    schedules = [config.lr_schedule, config.position_lr_schedule][: len(groups)]
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, [functools.partial(lr_factor, name, total_steps=total) for name in schedules]
    )
    return _State(model, optimizer, scheduler, grid, number_format)


def lr_factor(schedule: str, step: int, *, total_steps: int) -> float:
    """Learning rate at batch ``step`` of ``total_steps`` as a fraction of the group's ``lr``.

    one-cycle (torch's OneCycleLR curve, without its momentum cycling): cosine from 1/25 up to 1
    over the first 30 % of the steps, then cosine down to 1/(25 · 10⁴); cosine: ½ (1 + cos(π s/S));
    constant: 1.
    """
    progress = min(step / max(total_steps - 1, 1), 1.0)
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "constant":
        return 1.0
    start, end, peak = 1 / ONE_CYCLE_DIV, 1 / (ONE_CYCLE_DIV * ONE_CYCLE_FINAL_DIV), ONE_CYCLE_PEAK

    def anneal(a: float, b: float, fraction: float) -> float:
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * fraction))

    if progress <= peak:
        return anneal(start, 1.0, progress / peak)
    return anneal(1.0, end, (progress - peak) / (1 - peak))


def _autocast(device: torch.device, enabled: bool):
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate_model(
    model: DelaySNN,
    loader,
    device: torch.device,
    *,
    kernel: str = "rounded",
    ctx: distributed.DistContext | None = None,
) -> dict[str, Any]:
    """Accuracy, loss and mean hidden spike rates per sample of ``model`` in eval mode with ``rounded``
    (deployed) or ``gaussian`` kernels. With ``ctx``, ``loader`` holds this process's share of the
    samples and the totals are summed over processes."""
    model.eval()
    kernels = [layer.kernel for layer in model.delays]
    model.set_kernel(kernel)
    correct: float = 0  # counts, floats once summed over processes
    total: float = 0
    loss_sum = 0.0
    rate_sums = [0.0] * len(model.neurons)
    try:
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            out = model(x)
            loss_sum += float(readout_loss(out, y)) * len(y)
            correct += int((predictions_of(out, readout=True) == y).sum())
            total += len(y)
            rate_sums = [s + r * len(y) for s, r in zip(rate_sums, model.spike_rates)]
    finally:
        for layer, previous in zip(model.delays, kernels):
            layer.kernel = previous
    if ctx is not None:
        loss_sum, correct, total, *rate_sums = ctx.sum([loss_sum, correct, total, *rate_sums])
    total = int(total)
    return {
        "accuracy": correct / max(total, 1),
        "loss": loss_sum / max(total, 1),
        "n": total,
        "spike_rates": [r / total for r in rate_sums] if total else [],
    }


def _checkpoint_payload(
    state: _State,
    config: TrainConfig,
    data_info: dict[str, Any],
    rng_ranks: list[torch.Tensor],
    metrics: list[dict[str, Any]],
) -> dict[str, Any]:
    extra = {"rng_ranks": rng_ranks} if len(rng_ranks) > 1 else {}  # each process's dropout stream
    return {
        "format_version": checkpoints.FORMAT_VERSION,
        "epoch": state.epoch,
        "best_val": state.best_val,
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "rng": rng_ranks[0],
        "config": config.to_dict(),
        "data": data_info,
        "metrics": metrics,
        **extra,
    }


def _rank_seed(seed: int, rank: int, epoch: int) -> int:
    """Seed of process ``rank``'s own random stream (dropout) from epoch ``epoch`` on; rank 0 keeps ``seed``'s."""
    return (seed * 1_000_003 + rank * 7919 + epoch) % 2**63


def train(
    config: TrainConfig, data: str | Path, out: str | Path, *, resume: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Train a delay SNN on ``data`` into run directory ``out``; returns a summary dict.

    ``resume`` continues an interrupted run from ``out/checkpoint.pt`` with the
    configuration stored there (``config`` is ignored); finished epochs are kept. A run interrupted before
    its first epoch was committed starts again from its ``config.toml``.
    Under torchrun every process calls this with the same arguments (module docstring).
    """
    out = Path(out)
    ckpt = None
    outputs.check_output(out, overwrite=True, directory=True, error=CheckpointError)  # a directory, not under a file
    if resume and not (out / checkpoints.CHECKPOINT).exists() and (out / checkpoints.CONFIG).is_file():
        config = load_config(out / checkpoints.CONFIG)  # interrupted before its first epoch was committed: start again
        log.warning("%s: no epoch was finished; training it again from the start with its config.toml", out)
    elif resume:
        ckpt = checkpoints.load_pt(out / checkpoints.CHECKPOINT, checkpoints.CHECKPOINT_KEYS)
        config = make_config(ckpt["config"], source=str(out / checkpoints.CHECKPOINT))
    elif out.exists() and any(out.iterdir()):
        raise CheckpointError(
            f"run directory {out} already exists and is not empty; pass --resume to continue it "
            "or choose a new --out (nothing there is overwritten)"
        )
    config.validate()
    with distributed.session(resolve_device(config.device)) as ctx:
        ctx.barrier()  # every rank has checked `out` before rank 0 writes to it
        return _train(ctx, config, data, out, ckpt, progress and ctx.is_main)


def _train(
    ctx: distributed.DistContext,
    config: TrainConfig,
    data: str | Path,
    out: Path,
    ckpt: dict[str, Any] | None,
    progress: bool,
) -> dict[str, Any]:
    if config.batch_size < ctx.world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} is the global batch, shared by {ctx.world_size} processes; "
            f"it must be at least {ctx.world_size}"
        )
    torch.manual_seed(config.seed)
    device = ctx.device
    path = data_file(data)
    dataset = open_dataset(path, config)
    train_idx, val_idx = validation_split(dataset, fraction=config.val_fraction, seed=config.seed)
    data_info = {
        "train_file": str(path.resolve()),
        "dt": config.dt,
        "n_steps": dataset.n_steps,
        "pool": dataset.pool,
        "n_channels": dataset.n_channels,
        "n_inputs": dataset.n_inputs,
        "n_classes": dataset.n_classes,
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        **input_encoding(dataset).to_dict(),
    }
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sizes = [dataset.n_inputs, *config.hidden, dataset.n_classes]
    check_memory(
        4
        * (
            config.batch_size * dataset.n_steps * sum(sizes)
            + config.max_delay * sum(a * b for a, b in zip(sizes, sizes[1:]))
        ),
        f"training on {path} (batch {config.batch_size} × {dataset.n_steps} steps, layers "
        f"{' → '.join(map(str, sizes))}, {config.max_delay} delay taps)",
        f"lower batch_size, n_steps, hidden or max_delay (the readout has one neuron per class: the labels "
        f"in {path.name} give {dataset.n_classes})",
    )
    state = _build_state(config, dataset.n_inputs, dataset.n_classes, steps_per_epoch, device, data_info)
    metrics: list[dict[str, Any]] = []
    if ckpt is not None:
        if ckpt["data"]["n_inputs"] != dataset.n_inputs or ckpt["data"]["n_classes"] != dataset.n_classes:
            raise CheckpointError(
                f"{out}: checkpoint was trained on {ckpt['data']['train_file']} with different "
                f"inputs/classes than {path}"
            )
        try:
            state.model.load_state_dict(ckpt["model"])
            state.optimizer.load_state_dict(ckpt["optimizer"])
            state.scheduler.load_state_dict(ckpt["scheduler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise CheckpointError(
                f"{out / checkpoints.CHECKPOINT} does not match the model its configuration builds "
                f"({reason(exc)}); it is damaged or from another delaynir version"
            ) from None
        state.epoch, state.best_val = ckpt["epoch"], ckpt["best_val"]
        rngs = ckpt.get("rng_ranks", [ckpt["rng"]])
        if ctx.rank == 0 or len(rngs) == ctx.world_size:
            torch.set_rng_state(rngs[ctx.rank])
        else:  # resumed with more processes than the run had
            torch.manual_seed(_rank_seed(config.seed, ctx.rank, state.epoch))
        metrics = (
            ckpt["metrics"]
            if "metrics" in ckpt
            else [m for m in checkpoints.read_metrics(out) if m["epoch"] <= state.epoch]
        )  # a checkpoint without its metrics
        log.info("resuming %s after epoch %d", out, state.epoch)
    elif ctx.rank:
        torch.manual_seed(_rank_seed(config.seed, ctx.rank, 0))
    if ctx.is_main:  # only now, with the data read and the model built: a failed start leaves no directory
        out.mkdir(parents=True, exist_ok=True)
        outputs.write_text_atomic(out / checkpoints.CONFIG, dumps_toml(config.to_dict()))
        checkpoints.write_metrics(out, metrics)
    log.info(
        "training on %s (%d train / %d validation samples, %d inputs, %d classes, T=%d) on %s%s",
        path,
        len(train_idx),
        len(val_idx),
        dataset.n_inputs,
        dataset.n_classes,
        dataset.n_steps,
        device,
        f" × {ctx.world_size} processes (global batch {config.batch_size})" if ctx.enabled else "",
    )
    val_loader = make_loader(
        dataset,
        val_idx,
        batch_size=config.batch_size,
        shuffle=False,
        pad_shards=False,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    total_steps = config.epochs * steps_per_epoch
    model = state.model
    net = ctx.wrap(model)
    rewiring = build_rewiring(model, config, ctx)
    for epoch in range(state.epoch + 1, config.epochs + 1):
        t0 = time.perf_counter()
        loader = make_loader(
            dataset,
            train_idx,
            batch_size=config.batch_size,
            shuffle=True,
            seed=config.seed + epoch,
            num_workers=config.num_workers,
            rank=ctx.rank,
            world_size=ctx.world_size,
        )
        model.train()
        loss_sum = 0.0
        correct: float = 0  # counts, floats once summed over processes
        seen: float = 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, disable=not progress, unit="batch")
        for i, (x, y) in enumerate(bar):
            step = (epoch - 1) * steps_per_epoch + i
            sigma = sigma_at(step, total_steps, config)
            model.set_sigma(sigma)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            global_n = min(config.batch_size, len(train_idx) - i * config.batch_size)
            start, stop = shard_bounds(global_n, ctx.rank, ctx.world_size)
            n = stop - start  # this process's samples of the global batch (0: x is padding)
            if rewiring is not None:
                rewiring.prepare(step)
            with _autocast(device, config.amp):
                out_v = net(x)
                loss = readout_loss(out_v.float(), y)
            state.optimizer.zero_grad(set_to_none=True)
            # DDP averages over processes: weighting the local mean by n·N/global_n gives the global batch's gradient
            (loss * (n * ctx.world_size / global_n) if ctx.enabled else loss).backward()
            if rewiring is not None:
                rewiring.add_l1_grad()
            state.optimizer.step()
            state.scheduler.step()
            model.clamp_positions_()
            if rewiring is not None:
                rewiring.after_step(state.optimizer, step)
            loss_sum += float(loss.detach()) * n
            correct += int((predictions_of(out_v[:, :n].detach().float(), readout=True) == y[:n]).sum())
            seen += n
            bar.set_postfix(
                loss=f"{loss_sum / max(seen, 1):.3f}", acc=f"{correct / max(seen, 1):.3f}", sigma=f"{sigma:.2f}"
            )
        loss_sum, correct, seen = ctx.sum([loss_sum, correct, seen])
        ctx.broadcast_batchnorm(model)
        val = evaluate_model(model, val_loader, device, ctx=ctx)
        state.epoch = epoch
        improved = val["accuracy"] > state.best_val
        if improved:
            state.best_val = val["accuracy"]
        rng_ranks = ctx.gather(torch.get_rng_state())
        row = {
            "epoch": epoch,
            "loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_accuracy": val["accuracy"],
            "val_loss": val["loss"],
            "sigma": sigma,
            "lr": state.optimizer.param_groups[0]["lr"],
            "spike_rates": val["spike_rates"],
            "seconds": time.perf_counter() - t0,
        }
        if rewiring is not None:
            row.update(rewiring.epoch_metrics())
            log.info(
                "epoch %d: active connections %s of %s per sparse layer; removed %s, regrown %s",
                epoch,
                row["active_connections"],
                row["connection_budget"],
                row["removed"],
                row["regrown"],
            )
        elif model.sparse_layers():
            row.update(active_connections(model.sparse_layers()))
        metrics.append(row)
        if ctx.is_main:  # model.pt and metrics.jsonl first; checkpoint.pt, which holds both, commits the epoch
            if improved:
                checkpoints.save_pt(
                    out / checkpoints.MODEL,
                    model_payload(
                        model,
                        config,
                        data_info,
                        sigma,
                        epoch,
                        val["accuracy"],
                        weight_grid=state.weight_grid,
                        number_format=state.number_format,
                    ),
                )
            checkpoints.write_metrics(out, metrics)
            checkpoints.save_pt(
                out / checkpoints.CHECKPOINT, _checkpoint_payload(state, config, data_info, rng_ranks, metrics)
            )
        log.info(
            "epoch %d/%d loss %.4f train %.3f val %.3f sigma %.2f (%.1fs)",
            epoch,
            config.epochs,
            row["loss"],
            row["train_accuracy"],
            row["val_accuracy"],
            sigma,
            row["seconds"],
        )
    ctx.barrier()  # the run directory is complete when any rank returns
    best = max(metrics, key=lambda m: m["val_accuracy"]) if metrics else {}
    return {
        "run_dir": str(out),
        "epochs": config.epochs,
        "best_epoch": best.get("epoch"),
        "best_val_accuracy": state.best_val,
        "final": metrics[-1] if metrics else None,
        "delays": config.delays,
        "device": str(device),
        "world_size": ctx.world_size,
    }


def finetune(
    run_dir: str | Path,
    target: str,
    out: str | Path | None = None,
    *,
    epochs: int = 5,
    lr: float | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Quantisation-aware fine-tuning of a run's best model for ``target`` into a new run directory.

    Trains with rounded delays, frozen BatchNorm statistics and weights fake-quantised
    exactly as ``compile`` will quantise them (straight-through gradients), on the same
    data, split and settings as the source run; learning rate 1/10 of the source's by default.
    """
    from delaynir.hardware.profile import load_target

    profile = load_target(target)
    source = Run(run_dir)
    values = dict(
        source.config.to_dict(),
        epochs=epochs,
        init_from=str(source.path.resolve() / checkpoints.MODEL),
        quantize_target=str(profile.path) if Path(target).suffix == ".toml" else profile.name,
        lr=lr if lr is not None else source.config.lr / 10,
        lr_schedule="cosine",
    )
    out = Path(out) if out else Path(f"{run_dir}-finetune-{profile.name}")
    return train(load_config(None, values), source.train_file, out, progress=progress)
