"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

``train`` calls ``session(device)``: when torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK)
names more than one process it initialises the process group (NCCL on CUDA with device
``cuda:LOCAL_RANK``, gloo on CPU) and destroys it on exit; otherwise it is a no-op context with
world size 1. Every rank takes a contiguous share of each *global* batch (``batch_size`` is the
global batch), so batches, step counts and schedules do not depend on the number of processes.
Only rank 0 logs at INFO and writes files. See docs/distributed.md.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from delaynir.errors import ConfigError

log = logging.getLogger(__name__)

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job: rank, world size, local rank and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------ collectives (no-ops with one process)

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all ranks (float64)."""
        if not self.enabled:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def average_(self, tensor: torch.Tensor) -> torch.Tensor:
        """In place: the mean of ``tensor`` over all ranks."""
        if self.enabled:
            dist.all_reduce(tensor)
            tensor.div_(self.world_size)
        return tensor

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_batchnorm(self, model: nn.Module) -> None:
        """Copy rank 0's BatchNorm running statistics to every rank (as DDP's ``broadcast_buffers``)."""
        if not self.enabled:
            return
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                for buf in (module.running_mean, module.running_var, module.num_batches_tracked):
                    if buf is not None:
                        dist.broadcast(buf, src=0)

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` in DistributedDataParallel (gradients averaged over ranks in backward); itself alone.

        Every trainable parameter receives a gradient in every training forward pass (the custom
        delay autograd functions return gradients for all their parameter inputs), so
        ``find_unused_parameters`` stays off. Buffers are not broadcast per step: the pruning masks
        are kept identical by construction (``delaynir.nn.rewiring``) and BatchNorm statistics are
        synchronised per epoch by ``broadcast_batchnorm``.
        """
        if not self.enabled:
            return model
        import inspect

        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        newer = "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters  # torch >= 2.14
        no_sync: dict[str, Any] = {"forward_sync_buffers": False} if newer else {"broadcast_buffers": False}
        return DistributedDataParallel(model, device_ids=ids, **no_sync)


def launched_by_torchrun() -> bool:
    """True when RANK, WORLD_SIZE and LOCAL_RANK are all set (torchrun, or srun with them exported)."""
    return all(name in os.environ for name in ENV)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ConfigError(
            f"environment variable {name}={os.environ[name]!r} is not an integer; "
            "launch with torchrun, which sets RANK, WORLD_SIZE and LOCAL_RANK"
        ) from None


@contextmanager
def session(device: torch.device) -> Iterator[DistContext]:
    """This process's ``DistContext`` for one training run (module docstring).

    Joins an already initialised process group instead of creating one (and then leaves it up).
    """
    world = _env_int("WORLD_SIZE") if launched_by_torchrun() else 1
    if world <= 1:
        yield DistContext(device=device)
        return
    rank, local_rank = _env_int("RANK"), _env_int("LOCAL_RANK")
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s) on "
                "this node; start at most one process per GPU (--nproc_per_node)"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    package = logging.getLogger("delaynir")
    level = package.level
    if rank:
        package.setLevel(logging.WARNING)  # only rank 0 logs progress
    ctx = DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)
    log.info("distributed training: %d processes, backend %s, rank 0 on %s", world, dist.get_backend(), device)
    try:
        yield ctx
    finally:
        package.setLevel(level)
        if owned and dist.is_initialized():
            dist.destroy_process_group()
