"""Accuracy per training time: delaynir against the anchor's SNN-delays (DCLS) on the same data.

The reference is the architecture and training procedure of SNN-delays (Hammouamri,
Khalfaoui-Hassani & Masquelier, ICLR 2024; github.com/Thvnvtos/SNN-delays, read at commit
d169b4e), rebuilt here with DCLS's ``Dcls1d`` (version ``gauss``) and plain torch, without
SpikingJelly. Both models are trained in this process, one after the other for every seed
(the order alternates from seed to seed), on exactly the same samples, batches and split,
with the same torch thread count and allocator setting, and both are evaluated with
rounded (integer) delays.

    python benchmarks/vs_dcls.py --data DIR [--epochs 30] [--batch-size 64] [--seeds 0 1]
        [--device cpu|cuda] [--target-acc A] [--dropout P] [--out DIR] [--json]
    python benchmarks/vs_dcls.py --check      # hand check of the delay and neuron conventions

Needs the ``bench`` extra (pip install -e ".[bench]") for DCLS.

Data (identical for both)
-------------------------
``DIR/train.h5`` and ``DIR/test.h5`` in the SHD layout, opened with delaynir's
``SpikeDataset`` through ``delaynir.train.run_dir.open_dataset`` with the delaynir configuration of
the run (its defaults: dt 10 ms, ``n_steps`` from the file, channel pooling to ≤ 140 inputs,
i.e. SHD 700 → 140 by summing groups of 5, as SNN-delays' ``n_bins = 5``); the validation
split is ``delaynir.data.validation_split`` with delaynir's ``val_fraction`` and the seed
(held-out speakers when the file has them); batches come from ``delaynir.data.make_loader``
shuffled with seed ``seed + epoch`` (1-based epochs), exactly as ``delaynir.train.loop`` draws
them, so both models see the same batches in the same order. The test file is read only
after training: overall accuracy and accuracy on the samples whose speaker
(``extra/speaker``) never occurs in the training file.

delaynir
--------
``delaynir.train.loop.train(make_config({epochs, batch_size, seed, device}), data, run_dir)``:
its defaults for everything else (dropout, learning-rate schedule, σ schedule, …; bfloat16
autocast on CUDA is one of them). Per-epoch ``seconds`` and ``val_accuracy`` are read from
the run's ``metrics.jsonl``; the best-validation ``model.pt`` is tested with rounded delays
as ``delaynir/train/evaluate.py`` does (``delaynir.train.run_dir.Run`` + ``evaluate_model(kernel="rounded")``).
``--delaynir-set KEY=VALUE`` (repeatable, off by default) overrides a setting for
diagnosis; the JSON records the effective configuration.

Reference (SNN-delays), choice by choice
----------------------------------------
Architecture (``snn_delays.py`` ``SnnDelays.build_model`` / ``forward``; sizes from ``config.py``):
  * ``n_hidden_layers = 2`` × ``n_hidden_neurons = 256``, inputs = the data's (140 on SHD),
    outputs = the data's classes; every layer is ``Dcls1d(in, out, kernel_count=1, groups=1,
    dilated_kernel_size=max_delay, bias=False, version='gauss')`` (``config.py``: ``bias = False``,
    ``kernel_count = 1``, ``DCLSversion = 'gauss'``).
  * ``max_delay = 250 // time_step = 25`` taps (odd already).
  * Per layer: (T, B, C) → (B, C, T), ``F.pad(x, (left_padding, right_padding))`` with
    ``left_padding = max_delay − 1 = 24`` and ``right_padding = (max_delay − 1) // 2 = 12``
    (``config.py``), the Dcls1d convolution, back to (T, B, C). DCLS places tap
    ``k = P + max_delay // 2``, so output step n reads ``x[n − (12 − P)]``: the delay is
    ``d = 12 − P`` steps, ``P ∈ [−12, 12]`` ↔ ``d ∈ [0, 24]`` — causal, the convention
    ``y[t] = w · x[t − d]`` of delaynir (``--check`` verifies it on impulses). Because of the
    right padding every layer's output is 12 steps longer than its input: the readout runs
    for T + 36 steps, the last 36 after the input has ended (delaynir: T steps).
  * ``use_batchnorm = True``: SpikingJelly's multi-step ``BatchNorm1d`` over (T·B, C) of the
    (padded-length) currents, i.e. ``torch.nn.BatchNorm1d`` on the (T·B, C) reshape.
  * Hidden neurons: SpikingJelly ``neuron.LIFNode(tau=init_tau, v_threshold=1.0,
    surrogate_function=ATan(alpha=5), detach_reset=True, decay_input=False, v_reset=0 (default),
    step_mode='m')``, written here as a per-step torch loop (as SpikingJelly's ``torch`` backend
    runs it, differentiated by autograd): ``v ← v·(1 − 1/τ) + I[t]``
    (``neuronal_charge_no_decay_input_reset0``), ``s = H(v − 1)`` with ``H(u) = [u ≥ 0]``
    forward and the ATan surrogate ``(α/2)/(1 + (π α u/2)²)`` backward, hard reset
    ``v ← v·(1 − s.detach())``.
  * τ: ``config.py`` sets ``init_tau = 10.05`` (ms) and then ``init_tau = (init_tau + 1e-9) /
    time_step`` with ``time_step = 10`` (ms), so the LIFNode receives **τ = 1.005 steps**
    (β = 1 − 1/τ ≈ 0.005: the membrane keeps almost nothing from one 10 ms step to the next).
    That is the default here (``--ref-tau-steps``); delaynir's ``tau_steps = 10.05`` steps
    (β ≈ 0.90) is ten times longer.
  * Dropout: ``layer.Dropout(dropout_p, step_mode='m')`` after each hidden LIF, one mask per
    (sample, channel) shared by all steps. The paper/config value is ``dropout_p = 0.4``;
    here it is ``--dropout``, default 0 (the comparison this benchmark answers used none).
  * Readout: ``LIFNode(tau=init_tau, v_threshold=output_v_threshold = 1e9, …)`` and its
    ``v_seq`` (``loss = 'sum'``): with that threshold it never fires, so it is the leaky
    integrator ``v ← v·(1 − 1/τ) + I[t]`` with the same τ; loss
    ``CrossEntropyLoss(Σ_t softmax(v[t]), y)`` (``model.py`` ``calc_loss``, one-hot targets ≡
    class indices), prediction ``argmax Σ_t softmax(v[t])`` (``calc_metric``).
Initialisation (``snn_delays.py`` ``init_model``, after ``set_seed(seed)`` from ``utils.py``):
  * weights ``torch.nn.init.kaiming_uniform_(weight, nonlinearity='relu')`` (bound
    √(6 / fan_in)), all layers first, then positions ``uniform_(P, init_pos_a, init_pos_b)`` with
    ``init_pos_a = -max_delay//2 = −13`` (Python floors −25/2) and ``init_pos_b = 12``, then
    ``clamp_parameters()`` (P to [−12, 12]: 1/25 of the positions start at exactly −12, d = 24).
  * ``SIG`` constant ``sigInit = max_delay // 2 = 12``, ``requires_grad = False``. DCLS's gauss
    kernel uses ``|SIG| + 0.27`` as its standard deviation (12.27 steps at the start).
Training (``model.py`` ``train_model``, ``optimizers``, ``schedulers``):
  * ``optim.Adam`` for weights: groups {Dcls weights: lr 1e-3, weight decay 1e-5} and
    {BatchNorm weight and bias: lr 1e-3, weight decay 0} (``lr_w``, ``weight_decay``); a second
    ``optim.Adam(positions, lr = lr_pos = 100 × lr_w = 0.1, weight_decay = 0)``.
  * Schedules, stepped once per **epoch** (after it): ``OneCycleLR(opt_w, max_lr = max_lr_w =
    5 × lr_w = 5e-3, total_steps = epochs)`` (``scheduler_w = 'one_cycle'``; torch defaults:
    starts at 5e-3 / 25 = 2e-4, peak at 30 % of the epochs, cycles Adam's β1 0.95 ↔ 0.85) and
    ``CosineAnnealingLR(opt_pos, T_max = epochs)`` (``scheduler_pos = 'cosine_a'``;
    ``max_lr_pos`` is unused).
  * σ (``snn_delays.py`` ``decrease_sig``, called after every epoch): while ``epoch <
    final_epoch = epochs // 4`` (0-based) and SIG > 0.23, ``SIG *= (0.23 / sigInit) **
    (1 / final_epoch)`` — exponential decrease of SIG from 12 to **0.23** (the code's comment:
    "Decreasing to 0.23 instead of 0.5"), i.e. of the Gaussian's width from 12.27 to 0.5 steps,
    per epoch over the first quarter of the epochs (with fewer than 4 epochs it never decreases).
  * After every optimiser step ``clamp_parameters()`` (``reset_model(train=True)``).
Evaluation (``model.py`` ``eval_model``, ``snn_delays.py`` ``round_pos``): in eval mode
(BatchNorm running statistics, no dropout), SIG set to 0 and DCLS version ``max`` (a
triangle of half-width 1), positions rounded (``P.round_()``, clamped): every synapse becomes
exactly one integer tap; the trained (unrounded) state is restored afterwards. Model selection:
the epoch with the best validation accuracy (``metric_valid > best_metric_val``) is kept and
tested.

Where this benchmark departs from SNN-delays, and why
  * Data pipeline: SNN-delays bins SHD with SpikingJelly (frames of ``time_step`` = 10 ms,
    variable length padded to the longest sample of the batch) and, for SHD, validates *on the
    test set* (``datasets.py`` ``SHD_dataloaders`` returns (train, test); ``main.py`` passes test
    as ``valid_loader``), so its published SHD accuracy is a best-on-test figure. Here both
    models get delaynir's fixed-length binning and select on a validation split of the
    training file; the test file is used once at the end.
  * Accuracies are sample-weighted over the whole split (SNN-delays averages per-batch means).
  * SNN-delays' ``set_seed`` disables cuDNN (``cudnn.enabled = False``), which only slows its
    convolution on CUDA; it stays on here unless ``--ref-disable-cudnn`` (set during the
    reference's runs only).
  * SNN-delays writes a temporary checkpoint to disk on every evaluation; here the trained
    state is kept in memory and the best model is saved (``torch.save``) when it improves.
  * No augmentation (``augment = False`` in ``config.py``), no fine-tuning stage (not used there).

Timing and the figures reported
-------------------------------
An epoch's ``seconds`` is wall time from building its loader to the end of its validation and
model saving — the span delaynir's ``metrics.jsonl`` ``seconds`` covers (on CUDA the
reference synchronises before reading the clock; delaynir's validation reads results back to
the CPU every batch). Time to accuracy is the cumulative training time (sum of epoch seconds)
until the validation accuracy first reaches ``--target-acc`` (default: the reference's final
validation accuracy, that of its last epoch of the same seed); the ratio is reference time / delaynir time (> 1:
delaynir gets there faster). Medians are taken over seeds, over the seeds where a figure
exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- the reference, SNN-delays

#: SNN-delays config.py values (commit d169b4e); time_step in ms.
SNN_DELAYS = {
    "time_step_ms": 10,
    "init_tau_ms": 10.05,
    "tau_steps": (10.05 + 1e-9) / 10,  # config.py: init_tau = (init_tau + 1e-9) / time_step
    "n_hidden_layers": 2,
    "n_hidden_neurons": 256,
    "max_delay": 25,  # 250 // time_step, odd
    "left_padding": 24,  # max_delay - 1
    "right_padding": 12,  # (max_delay - 1) // 2
    "init_pos_a": -25 // 2,  # -max_delay//2 = -13 in Python
    "init_pos_b": 25 // 2,
    "sig_init": 25 // 2,  # sigInit = max_delay // 2
    "sig_final": 0.23,  # decrease_sig target (DCLS adds 0.27: width 0.5)
    "dcls_sig_offset": 0.27,  # DCLS gauss: SIG.abs() + 0.27
    "final_epoch_fraction": 0.25,  # final_epoch = (1 * epochs) // 4
    "v_threshold": 1.0,
    "alpha": 5.0,
    "output_v_threshold": 1e9,
    "dropout_p_paper": 0.4,
    "lr_w": 1e-3,
    "max_lr_w": 5e-3,  # 5 * lr_w, one-cycle per epoch
    "lr_pos": 0.1,  # 100 * lr_w, cosine per epoch
    "weight_decay": 1e-5,  # weights only; BatchNorm parameters 0
}


class _HeavisideATan(torch.autograd.Function):
    """SpikingJelly ``surrogate.ATan``: forward ``[u >= 0]``, backward ``(α/2) / (1 + (π α u / 2)²)``."""

    @staticmethod
    def forward(ctx, u, alpha):
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u >= 0).to(u)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        return grad * (a / 2) / (1 + (math.pi / 2 * a * u) ** 2), None


def ref_lif(current: torch.Tensor, tau: float, v_threshold: float = 1.0, alpha: float = 5.0) -> torch.Tensor:
    """Multi-step ``LIFNode(decay_input=False, v_reset=0, detach_reset=True)`` over (T, B, C); spikes (T, B, C)."""
    v = torch.zeros_like(current[0])
    decay = 1.0 - 1.0 / tau
    spikes = []
    for t in range(current.shape[0]):
        v = v * decay + current[t]  # neuronal_charge_no_decay_input_reset0
        s = _HeavisideATan.apply(v - v_threshold, alpha)
        v = v * (1.0 - s.detach())  # hard reset to 0, reset detached
        spikes.append(s)
    return torch.stack(spikes)


def ref_readout(current: torch.Tensor, tau: float) -> torch.Tensor:
    """The output ``LIFNode(v_threshold=1e9)``'s ``v_seq``: it never fires, so v ← v·(1 − 1/τ) + I[t]."""
    v = torch.zeros_like(current[0])
    decay = 1.0 - 1.0 / tau
    out = []
    for t in range(current.shape[0]):
        v = v * decay + current[t]
        out.append(v)
    return torch.stack(out)


def set_seed(seed: int) -> None:
    """SNN-delays ``utils.set_seed`` without its cuDNN switches (see ``--ref-disable-cudnn``)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.cuda.manual_seed_all(seed)


class SnnDelaysRef(nn.Module):
    """SNN-delays' ``SnnDelays`` (snn_delays): [Dcls1d → BN → LIF → dropout] × 2, Dcls1d → leaky readout."""

    def __init__(
        self,
        n_inputs: int,
        n_outputs: int,
        *,
        seed: int,
        tau: float = SNN_DELAYS["tau_steps"],
        dropout: float = 0.0,
        n_hidden: int = SNN_DELAYS["n_hidden_neurons"],
        n_layers: int = SNN_DELAYS["n_hidden_layers"],
        max_delay: int = SNN_DELAYS["max_delay"],
    ):
        super().__init__()
        from DCLS.construct.modules import Dcls1d

        self.tau, self.dropout_p, self.max_delay = float(tau), float(dropout), int(max_delay)
        self.left_padding, self.right_padding = max_delay - 1, (max_delay - 1) // 2
        self.sig_init = max_delay // 2
        sizes = [n_inputs] + [n_hidden] * n_layers + [n_outputs]
        self.dcls = nn.ModuleList(
            Dcls1d(a, b, kernel_count=1, groups=1, dilated_kernel_size=max_delay, bias=False, version="gauss")
            for a, b in zip(sizes, sizes[1:])
        )
        self.bns = nn.ModuleList(nn.BatchNorm1d(h) for h in sizes[1:-1])
        # init_model: set_seed, then every layer's weight, then every layer's positions, then SIG
        set_seed(seed)
        for layer in self.dcls:
            nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
        for layer in self.dcls:
            nn.init.uniform_(layer.P, a=-max_delay // 2, b=max_delay // 2)
            layer.clamp_parameters()
        for layer in self.dcls:
            nn.init.constant_(layer.SIG, self.sig_init)
            layer.SIG.requires_grad = False

    def _delay(self, k: int, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x.permute(1, 2, 0), (self.left_padding, self.right_padding))  # (B, C, T + 36)
        return self.dcls[k](x).permute(2, 0, 1)  # (T + 12, B, C_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (T, B, C_in) → readout membranes (T + 12·(n_layers + 1), B, n_outputs)."""
        for k, bn in enumerate(self.bns):
            current = self._delay(k, x)
            T, B, C = current.shape
            current = bn(current.reshape(T * B, C)).view(T, B, C)
            spikes = ref_lif(current, self.tau, SNN_DELAYS["v_threshold"], SNN_DELAYS["alpha"])
            if self.training and self.dropout_p > 0:  # one mask per (sample, channel), shared over time
                spikes = spikes * F.dropout(torch.ones_like(spikes[0]), self.dropout_p, training=True)
            x = spikes
        return ref_readout(self._delay(len(self.bns), x), self.tau)

    def parameter_groups(self) -> tuple[list, list, list]:
        """(Dcls weights, BatchNorm weights and biases, Dcls positions), as ``build_model`` collects them."""
        return (
            [m.weight for m in self.dcls],
            [p for bn in self.bns for p in (bn.weight, bn.bias)],
            [m.P for m in self.dcls],
        )

    def clamp_parameters(self) -> None:
        for layer in self.dcls:
            layer.clamp_parameters()

    @property
    def sig(self) -> float:
        return float(self.dcls[-1].SIG.detach().flatten()[0])

    @torch.no_grad()
    def decrease_sig(self, epoch: int, final_epoch: int) -> None:
        """``SnnDelays.decrease_sig`` (gauss, 'exp'); ``epoch`` is 0-based, called after each epoch."""
        if epoch < final_epoch and self.sig > SNN_DELAYS["sig_final"]:
            factor = (SNN_DELAYS["sig_final"] / self.sig_init) ** (1 / final_epoch)
            for layer in self.dcls:
                layer.SIG *= factor

    @contextlib.contextmanager
    def rounded(self):
        """``eval_model``: SIG = 0, DCLS version ``max``, ``round_pos()``; the trained state is restored after."""
        saved = [(m.P.detach().clone(), m.SIG.detach().clone(), m.version, m.DCK.version) for m in self.dcls]
        try:
            with torch.no_grad():
                for m in self.dcls:
                    m.SIG.mul_(0)
                    m.version = m.DCK.version = "max"
                    m.P.round_()
                    m.clamp_parameters()
            yield self
        finally:
            with torch.no_grad():
                for m, (p, sig, version, dck_version) in zip(self.dcls, saved):
                    m.P.copy_(p)
                    m.SIG.copy_(sig)
                    m.version, m.DCK.version = version, dck_version

    def integer_delays(self) -> list[torch.Tensor]:
        """Per layer the deployed delays d = 12 − round(P) in steps, (out, in)."""
        lim = self.max_delay // 2
        return [lim - torch.round(m.P.detach()[0, :, :, 0]).clamp(-lim, lim).long() for m in self.dcls]


def summed_softmax_loss(v: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(CrossEntropyLoss(Σ_t softmax(v[t]), y), predictions): ``calc_loss`` / ``calc_metric`` with loss 'sum'."""
    m = F.softmax(v, dim=2).sum(0)
    return F.cross_entropy(m, y), m.argmax(1)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def ref_evaluate(model: SnnDelaysRef, loader, device: torch.device) -> dict[str, Any]:
    """Accuracy and loss with rounded delays in eval mode (``eval_model``), sample-weighted."""
    was_training = model.training
    model.eval()
    correct = total = 0
    loss_sum = 0.0
    with model.rounded():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            loss, pred = summed_softmax_loss(model(x), y)
            loss_sum += float(loss) * len(y)
            correct += int((pred == y).sum())
            total += len(y)
    model.train(was_training)
    return {"accuracy": correct / max(total, 1), "loss": loss_sum / max(total, 1), "n": total}


def train_reference(
    dataset,
    train_idx,
    val_idx,
    *,
    n_inputs: int,
    n_classes: int,
    epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    dropout: float,
    tau: float,
    out: Path,
    disable_cudnn: bool,
) -> tuple[SnnDelaysRef, list[dict[str, Any]]]:
    """SNN-delays' ``train_model`` on delaynir's loaders; returns (model with the best-validation state, metrics)."""
    from delaynir.data import make_loader

    cudnn_was = torch.backends.cudnn.enabled
    if disable_cudnn:
        torch.backends.cudnn.enabled = False
    try:
        model = SnnDelaysRef(n_inputs, n_classes, seed=seed, tau=tau, dropout=dropout).to(device)
        weights, bn_params, positions = model.parameter_groups()
        opt_w = torch.optim.Adam(
            [
                {"params": weights, "lr": SNN_DELAYS["lr_w"], "weight_decay": SNN_DELAYS["weight_decay"]},
                {"params": bn_params, "lr": SNN_DELAYS["lr_w"], "weight_decay": 0.0},
            ]
        )
        opt_p = torch.optim.Adam(positions, lr=SNN_DELAYS["lr_pos"], weight_decay=0.0)
        sched_w = torch.optim.lr_scheduler.OneCycleLR(opt_w, max_lr=SNN_DELAYS["max_lr_w"], total_steps=epochs)
        sched_p = torch.optim.lr_scheduler.CosineAnnealingLR(opt_p, T_max=epochs)
        final_epoch = epochs // 4  # config.py: final_epoch = (1 * epochs) // 4
        val_loader = make_loader(dataset, val_idx, batch_size=batch_size, shuffle=False)
        set_seed(seed)  # train_model starts with set_seed
        out.mkdir(parents=True, exist_ok=True)
        best_val, best_state, metrics = -1.0, None, []
        for epoch in range(1, epochs + 1):
            _sync(device)
            t0 = time.perf_counter()
            loader = make_loader(dataset, train_idx, batch_size=batch_size, shuffle=True, seed=seed + epoch)
            sigma = model.sig + SNN_DELAYS["dcls_sig_offset"]
            lr_w, lr_p = opt_w.param_groups[0]["lr"], opt_p.param_groups[0]["lr"]
            model.train()
            loss_sum, correct, seen = 0.0, 0, 0
            for x, y in loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                opt_w.zero_grad()
                opt_p.zero_grad()
                loss, pred = summed_softmax_loss(model(x), y)
                loss.backward()
                opt_w.step()
                opt_p.step()
                model.clamp_parameters()  # reset_model(train=True)
                loss_sum += float(loss.detach()) * len(y)
                correct += int((pred == y).sum())
                seen += len(y)
            sched_w.step()
            sched_p.step()
            model.decrease_sig(epoch - 1, final_epoch)
            val = ref_evaluate(model, val_loader, device)
            if val["accuracy"] > best_val:
                best_val = val["accuracy"]
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                torch.save(best_state, out / "model.pt")
            _sync(device)
            metrics.append(
                {
                    "epoch": epoch,
                    "loss": loss_sum / max(seen, 1),
                    "train_accuracy": correct / max(seen, 1),
                    "val_accuracy": val["accuracy"],
                    "val_loss": val["loss"],
                    "sigma": sigma,
                    "lr": lr_w,
                    "lr_positions": lr_p,
                    "seconds": time.perf_counter() - t0,
                }
            )
        (out / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
        model.load_state_dict(best_state)
        return model, metrics
    finally:
        torch.backends.cudnn.enabled = cudnn_was


# --------------------------------------------------------------------------- delaynir


def train_delaynir(config, data: Path, run_dir: Path) -> list[dict[str, Any]]:
    from delaynir.train import checkpoints
    from delaynir.train.loop import train

    train(config, data, run_dir)
    return [
        {
            "epoch": m["epoch"],
            "loss": m["loss"],
            "train_accuracy": m["train_accuracy"],
            "val_accuracy": m["val_accuracy"],
            "val_loss": m.get("val_loss"),
            "sigma": m.get("sigma"),
            "lr": m.get("lr"),
            "seconds": m["seconds"],
        }
        for m in checkpoints.read_metrics(run_dir)
    ]


def test_delaynir(
    run_dir: Path, test_path: Path, subsets: dict[str, np.ndarray], batch_size: int, device: torch.device
) -> dict[str, Any]:
    """Rounded-delay accuracy of the run's best model on each subset of the test file (as delaynir/train/evaluate.py)."""
    from delaynir.data import make_loader
    from delaynir.train.loop import evaluate_model
    from delaynir.train.run_dir import Run

    run = Run(run_dir)
    info = run.data_info
    dataset = run.dataset(test_path)
    model = run.model.to(device)
    result = {"best_epoch": run.payload["epoch"], "n_train": info["n_train"], "n_val": info["n_val"]}
    for name, idx in subsets.items():
        if len(idx):
            loader = make_loader(dataset, idx, batch_size=batch_size, shuffle=False)
            r = evaluate_model(model, loader, device, kernel="rounded")
            result[name] = {"accuracy": r["accuracy"], "n": r["n"]}
        else:
            result[name] = {"accuracy": None, "n": 0}
    return result


def test_reference(
    model: SnnDelaysRef, dataset, subsets: dict[str, np.ndarray], batch_size: int, device: torch.device
) -> dict[str, Any]:
    from delaynir.data import make_loader

    result = {}
    for name, idx in subsets.items():
        if len(idx):
            r = ref_evaluate(model, make_loader(dataset, idx, batch_size=batch_size, shuffle=False), device)
            result[name] = {"accuracy": r["accuracy"], "n": r["n"]}
        else:
            result[name] = {"accuracy": None, "n": 0}
    return result


# --------------------------------------------------------------------------- figures


def time_to(metrics: list[dict[str, Any]], target: float) -> dict[str, Any]:
    """Cumulative seconds (and epoch) until val_accuracy first reaches ``target``; None if never."""
    total = 0.0
    for m in metrics:
        total += m["seconds"]
        if m["val_accuracy"] >= target - 1e-12:
            return {"seconds": total, "epoch": m["epoch"]}
    return {"seconds": None, "epoch": None}


def _median(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _parse_set(items: list[str]) -> dict[str, Any]:
    import tomllib

    values = {}
    for item in items:
        _key, sep, _ = item.partition("=")
        if not sep:
            raise SystemExit(f"--delaynir-set expects KEY=VALUE (TOML value), got {item!r}")
        values.update(tomllib.loads(item))
    return values


def run_seed(seed: int, order: tuple[str, str], args, data_dir: Path, out: Path) -> dict[str, Any]:
    from delaynir.data import validation_split
    from delaynir.train.config import make_config
    from delaynir.train.run_dir import data_file, open_dataset

    config = make_config(
        {**args.delaynir_set, "epochs": args.epochs, "batch_size": args.batch_size, "seed": seed, "device": args.device}
    )
    train_path, test_path = data_file(data_dir, "train.h5"), data_file(data_dir, "test.h5")
    dataset = open_dataset(train_path, config)
    train_idx, val_idx = validation_split(dataset, fraction=config.val_fraction, seed=config.seed)
    test_set = open_dataset(test_path, config, n_steps=dataset.n_steps, pool=dataset.pool)
    if dataset.speakers is not None and test_set.speakers is not None:
        held_out = np.flatnonzero(~np.isin(test_set.speakers, np.unique(dataset.speakers)))
    else:
        held_out = np.zeros(0, dtype=np.int64)
    subsets = {"all": np.arange(len(test_set)), "held_out_speakers": held_out}
    device = torch.device(args.device)
    result: dict[str, Any] = {
        "seed": seed,
        "order": list(order),
        "data": {
            "n_train": len(train_idx),
            "n_val": len(val_idx),
            "n_test": len(test_set),
            "n_test_held_out_speakers": len(held_out),
            "n_steps": dataset.n_steps,
            "n_inputs": dataset.n_inputs,
            "n_classes": dataset.n_classes,
            "pool": dataset.pool,
            "dt": dataset.dt,
        },
    }
    for which in order:
        if which == "reference":
            model, metrics = train_reference(
                dataset,
                train_idx,
                val_idx,
                n_inputs=dataset.n_inputs,
                n_classes=dataset.n_classes,
                epochs=args.epochs,
                batch_size=args.batch_size,
                seed=seed,
                device=device,
                dropout=args.dropout,
                tau=args.ref_tau_steps,
                out=out / f"seed{seed}" / "reference",
                disable_cudnn=args.ref_disable_cudnn,
            )
            best = max(metrics, key=lambda m: m["val_accuracy"])  # first of the best, as `>` keeps
            result["reference"] = {
                "epochs": metrics,
                "best_val_accuracy": best["val_accuracy"],
                "best_epoch": best["epoch"],
                "test": test_reference(model, test_set, subsets, args.batch_size, device),
            }
            del model
        else:
            run_dir = out / f"seed{seed}" / "delaynir"
            metrics = train_delaynir(config, train_path, run_dir)
            tested = test_delaynir(run_dir, test_path, subsets, args.batch_size, device)
            if (tested.pop("n_train"), tested.pop("n_val")) != (len(train_idx), len(val_idx)):
                raise SystemExit(f"seed {seed}: delaynir's split differs from the reference's; not comparable")
            result["delaynir"] = {
                "epochs": metrics,
                "best_val_accuracy": max(m["val_accuracy"] for m in metrics),
                "best_epoch": tested.pop("best_epoch"),
                "test": tested,
                "run_dir": str(run_dir),
            }
    final = result["reference"]["epochs"][-1]["val_accuracy"]
    target = args.target_acc if args.target_acc is not None else final
    tta = {name: time_to(result[name]["epochs"], target) for name in ("reference", "delaynir")}
    ratio = (
        tta["reference"]["seconds"] / tta["delaynir"]["seconds"]
        if tta["reference"]["seconds"] and tta["delaynir"]["seconds"]
        else None
    )
    source = "--target-acc" if args.target_acc is not None else "reference final validation accuracy"
    result["time_to_accuracy"] = {
        "target": target,
        "target_source": source,
        **tta,
        "ratio_reference_over_delaynir": ratio,
    }
    for name in ("reference", "delaynir"):
        result[name]["train_seconds"] = sum(m["seconds"] for m in result[name]["epochs"])
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"seeds": [r["seed"] for r in runs]}
    for name in ("reference", "delaynir"):
        summary[name] = {
            "best_val_accuracy": _median(r[name]["best_val_accuracy"] for r in runs),
            "test_accuracy": _median(r[name]["test"]["all"]["accuracy"] for r in runs),
            "test_accuracy_held_out_speakers": _median(r[name]["test"]["held_out_speakers"]["accuracy"] for r in runs),
            "train_seconds": _median(r[name]["train_seconds"] for r in runs),
            "epoch_seconds": _median(statistics.median(m["seconds"] for m in r[name]["epochs"]) for r in runs),
            "time_to_accuracy_seconds": _median(r["time_to_accuracy"][name]["seconds"] for r in runs),
            "reached_target": sum(r["time_to_accuracy"][name]["seconds"] is not None for r in runs),
        }
    summary["time_to_accuracy_ratio"] = _median(r["time_to_accuracy"]["ratio_reference_over_delaynir"] for r in runs)
    summary["epoch_time_ratio"] = (
        summary["reference"]["epoch_seconds"] / summary["delaynir"]["epoch_seconds"]
        if summary["delaynir"]["epoch_seconds"]
        else None
    )
    return summary


def _fmt(value, spec=".3f", none="–") -> str:
    return none if value is None else format(value, spec)


def print_report(result: dict[str, Any]) -> None:
    s = result["settings"]
    print(
        f"vs_dcls: {s['data']} on {s['device']}, {s['threads']} thread(s), {s['epochs']} epochs, "
        f"batch {s['batch_size']}, seeds {s['seeds']}"
    )
    ref = s["reference"]
    print(
        f"  reference: SNN-delays on DCLS {s['dcls_version']} Dcls1d gauss, {ref['n_hidden_layers']}×"
        f"{ref['n_hidden_neurons']}, D={ref['max_delay']}, tau {ref['tau_steps']:.4g} steps, dropout "
        f"{ref['dropout']}, Adam {ref['lr_w']:g} one-cycle→{ref['max_lr_w']:g} per epoch, positions "
        f"{ref['lr_pos']:g} cosine, σ {ref['sig_init'] + ref['dcls_sig_offset']:.2f}→"
        f"{ref['sig_final'] + ref['dcls_sig_offset']:.2f} over {ref['final_epoch']} epoch(s)"
    )
    d = s["delaynir"]
    print(
        f"  delaynir {s['delaynir_version']}: hidden {d['hidden']}, D={d['max_delay']}, tau {d['tau_steps']} steps, "
        f"dropout {d['dropout']}, Adam {d['lr']:g} {d['lr_schedule']} per batch, positions ×"
        f"{d['position_lr_factor']:g} {d.get('position_lr_schedule', d['lr_schedule'])}, σ {d['sigma_init'] or d['max_delay'] / 2:g}→{d['sigma_final']:g} over "
        f"{d['sigma_fraction']:.0%} of the batches, amp {d['amp']}"
    )
    for r in result["runs"]:
        dd = r["data"]
        print(
            f"\nseed {r['seed']} (order: {', '.join(r['order'])}; {dd['n_train']} train / {dd['n_val']} validation / "
            f"{dd['n_test']} test samples, {dd['n_test_held_out_speakers']} of them held-out speakers; "
            f"T={dd['n_steps']}, {dd['n_inputs']} inputs, {dd['n_classes']} classes)"
        )
        print(f"  {'epoch':>5} | {'ref s':>7} {'ref val':>7} | {'delaynir s':>10} {'delaynir val':>12}")
        for a, b in zip(r["reference"]["epochs"], r["delaynir"]["epochs"]):
            print(
                f"  {a['epoch']:>5} | {a['seconds']:>7.2f} {a['val_accuracy']:>7.3f} | "
                f"{b['seconds']:>10.2f} {b['val_accuracy']:>12.3f}"
            )
        for name in ("reference", "delaynir"):
            x = r[name]
            t = x["test"]
            print(
                f"  {name:>9}: best val {x['best_val_accuracy']:.3f} (epoch {x['best_epoch']}), training "
                f"{x['train_seconds']:.1f} s; test (rounded delays) {_fmt(t['all']['accuracy'])} on {t['all']['n']}, "
                f"held-out speakers {_fmt(t['held_out_speakers']['accuracy'])} on {t['held_out_speakers']['n']}"
            )
        tt = r["time_to_accuracy"]
        reach = {
            n: (f"{tt[n]['seconds']:.1f} s (epoch {tt[n]['epoch']})" if tt[n]["seconds"] is not None else "not reached")
            for n in ("reference", "delaynir")
        }
        print(
            f"  time to val acc ≥ {tt['target']:.3f} ({tt['target_source']}): reference {reach['reference']}, "
            f"delaynir {reach['delaynir']}; ratio {_fmt(tt['ratio_reference_over_delaynir'], '.2f')}×"
        )
    m = result["summary"]
    print(f"\nmedian over seeds {m['seeds']}:")
    print(f"  {'':>9}  {'best val':>8} {'test':>6} {'held-out':>8} {'train s':>8} {'epoch s':>8} {'time-to-acc s':>13}")
    for name in ("reference", "delaynir"):
        x = m[name]
        print(
            f"  {name:>9}  {_fmt(x['best_val_accuracy']):>8} {_fmt(x['test_accuracy']):>6} "
            f"{_fmt(x['test_accuracy_held_out_speakers']):>8} {_fmt(x['train_seconds'], '.1f'):>8} "
            f"{_fmt(x['epoch_seconds'], '.2f'):>8} {_fmt(x['time_to_accuracy_seconds'], '.1f'):>13} "
            f"(reached in {x['reached_target']}/{len(m['seeds'])})"
        )
    print(
        f"  time-to-accuracy ratio (reference / delaynir): {_fmt(m['time_to_accuracy_ratio'], '.2f')}×; "
        f"epoch-time ratio: {_fmt(m['epoch_time_ratio'], '.2f')}×"
    )
    if s.get("out"):
        print(f"  run directories: {s['out']}")


# --------------------------------------------------------------------------- hand check of the conventions


@torch.no_grad()
def check_conventions(seed: int = 0) -> dict[str, Any]:
    """Impulse and chain checks: the reference's rounded Dcls1d layer and LIF against delaynir's conventions."""
    from delaynir.nn import DelayLinear
    from delaynir.nn.model import DelaySNN, ModelConfig
    from delaynir.nn.neurons import beta_from_tau, li_sequence, lif_sequence

    torch.manual_seed(seed)
    D, T, c_in, c_out = SNN_DELAYS["max_delay"], 60, 3, 4
    ref = SnnDelaysRef(c_in, c_out, seed=seed, n_hidden=c_out, n_layers=0, max_delay=D)  # one Dcls1d layer
    layer = ref.dcls[0]
    layer.P.uniform_(-12.4, 12.4)  # non-integer positions: rounding matters
    out: dict[str, Any] = {"positions": [[round(float(p), 3) for p in row] for row in layer.P[0, :, :, 0]]}
    # 1. impulses: x[t0, i] = 1 for one input at a time
    with ref.rounded():
        d_ref = ref.integer_delays()[0]  # 12 − round(P)
        w = layer.weight[:, :, 0]
        worst = 0.0
        for i in range(c_in):
            x = torch.zeros(T, 1, c_in)
            t0 = 7
            x[t0, 0, i] = 1.0
            y = ref._delay(0, x)[:, 0]  # (T + 12, C_out)
            for j in range(c_out):
                expect = torch.zeros(T + 12)
                expect[t0 + d_ref[j, i]] = w[j, i]  # y[t] = w · x[t − d]
                worst = max(worst, float((y[:, j] - expect).abs().max()))
        out["impulse_max_abs_error"] = worst
        out["delays"] = d_ref.tolist()
        out["rounded_positions"] = layer.P[0, :, :, 0].long().tolist()
        # 2. the same layer against delaynir's DelayLinear with positions d, rounded kernel, on random spikes
        dl = DelayLinear(c_in, c_out, D, bias=False, kernel="rounded")
        dl.weight.copy_(w)
        dl.positions.copy_(d_ref.float())
        x = (torch.rand(T, 5, c_in) < 0.3).float()
        y_ref = ref._delay(0, x)
        out["layer_vs_delaynir_max_abs_error_first_T"] = float((y_ref[:T] - dl(x)).abs().max())
    # the reference's unrounded Gaussian training kernel is delaynir's at positions 12 − P, σ = |SIG| + 0.27
    layer.clamp_parameters()
    layer.SIG.fill_(1.73)
    dl_g = DelayLinear(c_in, c_out, D, bias=False, kernel="gaussian", sigma=2.0)
    dl_g.weight.copy_(layer.weight[:, :, 0])
    dl_g.positions.copy_(12 - layer.P[0, :, :, 0])
    x = (torch.rand(T, 5, c_in) < 0.3).float()
    out["gaussian_layer_vs_delaynir_max_abs_error_first_T"] = float((ref._delay(0, x)[:T] - dl_g(x)).abs().max())
    # 3. LIF and readout at delaynir's τ: same recurrence (ties v == θ aside: [v ≥ θ] vs [v > θ])
    tau = 10.05
    current = torch.randn(T, 8, 16) * 0.6 + 0.2
    z_ref = ref_lif(current, tau)
    z_dn, _ = lif_sequence(current, torch.full((16,), beta_from_tau(tau)), torch.ones(16))
    out["lif_spikes_identical"] = bool(torch.equal(z_ref, z_dn))
    out["lif_spike_rate"] = float(z_ref.mean())
    v_dn = li_sequence(current, torch.full((16,), beta_from_tau(tau)))
    out["readout_max_abs_error"] = float((ref_readout(current, tau) - v_dn).abs().max())
    # 4. whole network in eval mode with rounded delays, reference τ set to delaynir's: first T readout steps
    n_in, hidden, n_out = 6, 16, 5
    net = SnnDelaysRef(n_in, n_out, seed=seed, tau=tau, n_hidden=hidden).eval()
    for bn in net.bns:
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.2, 0.6)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.1, 0.3)
    dn = DelaySNN(
        ModelConfig(
            n_inputs=n_in,
            n_outputs=n_out,
            hidden=[hidden, hidden],
            max_delay=D,
            tau_steps=tau,
            dropout=0.0,
            batchnorm=True,
            bias=False,
        )
    ).eval()
    dn.set_kernel("rounded")
    for k, d in enumerate(net.integer_delays()):
        dn.delays[k].weight.copy_(net.dcls[k].weight[:, :, 0])
        dn.delays[k].positions.copy_(d.float())
    for k, bn in enumerate(net.bns):
        dn.norms[k].load_state_dict(bn.state_dict())
    x = (torch.rand(T, 4, n_in) < 0.2).float() * torch.randint(1, 3, (T, 4, n_in))
    with net.rounded():
        v_ref = net(x)
    v_dn = dn(x)
    out["network_readout_steps"] = {"reference": v_ref.shape[0], "delaynir": v_dn.shape[0]}
    out["network_max_abs_error_first_T"] = float((v_ref[:T] - v_dn).abs().max())
    out["network_hidden_spike_rates_delaynir"] = dn.spike_rates
    tol = 1e-5
    out["ok"] = bool(
        out["impulse_max_abs_error"] < tol
        and out["layer_vs_delaynir_max_abs_error_first_T"] < tol
        and out["gaussian_layer_vs_delaynir_max_abs_error_first_T"] < tol
        and out["lif_spikes_identical"]
        and out["readout_max_abs_error"] < tol
        and out["network_max_abs_error_first_T"] < 1e-4
    )
    return out


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Every choice of the reference, with its source file: this file's docstring.",
    )
    ap.add_argument("--data", type=Path, help="directory with train.h5 and test.h5 (SHD layout)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument(
        "--target-acc",
        type=float,
        default=None,
        help="validation accuracy for time-to-accuracy (default: the reference's final one, per seed)",
    )
    ap.add_argument(
        "--dropout", type=float, default=0.0, help="reference dropout (default 0; SNN-delays' config.py uses 0.4)"
    )
    ap.add_argument(
        "--ref-tau-steps",
        type=float,
        default=SNN_DELAYS["tau_steps"],
        help="reference LIF/readout τ in steps (default 1.005: SNN-delays' init_tau 10.05 ms / 10 ms)",
    )
    ap.add_argument(
        "--ref-disable-cudnn",
        action="store_true",
        help="disable cuDNN during the reference's runs, as SNN-delays' set_seed does",
    )
    ap.add_argument(
        "--delaynir-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a delaynir training setting (TOML value), for diagnosis only",
    )
    ap.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    ap.add_argument("--default-allocator", action="store_true", help="leave glibc's allocator settings alone")
    ap.add_argument("--out", type=Path, default=None, help="where run directories go (default: a temporary dir)")
    ap.add_argument("--json", action="store_true", help="print everything as JSON")
    ap.add_argument("--check", action="store_true", help="only run the delay/neuron convention checks")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    if args.check:
        res = check_conventions()
        print(json.dumps(res, indent=2))
        return 0 if res["ok"] else 1
    if args.data is None:
        ap.error("--data is required (or --check)")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda requested but CUDA is not available")
    if args.epochs < 1 or args.batch_size < 1 or not 0 <= args.dropout < 1 or args.ref_tau_steps <= 1:
        ap.error("need epochs >= 1, batch size >= 1, 0 <= dropout < 1 and ref tau > 1 step")
    args.delaynir_set = _parse_set(args.delaynir_set)
    if not args.default_allocator:
        from delaynir.nn.allocator import tune_cpu_allocator

        tune_cpu_allocator()  # process-wide, as the delaynir command sets it: both models share it

    from importlib.metadata import version

    import DCLS  # noqa: F401

    import delaynir
    from delaynir.train.config import make_config

    dconf = make_config(
        {
            **args.delaynir_set,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "seed": args.seeds[0],
            "device": args.device,
        }
    ).to_dict()
    settings = {
        "data": str(args.data),
        "device": args.device,
        "threads": threads,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seeds": args.seeds,
        "torch_version": torch.__version__,
        "dcls_version": version("dcls"),
        "delaynir_version": delaynir.__version__,
        "allocator": "default" if args.default_allocator else "tuned",
        "out": str(args.out) if args.out else None,
        "reference": {
            **SNN_DELAYS,
            "tau_steps": args.ref_tau_steps,
            "dropout": args.dropout,
            "final_epoch": args.epochs // 4,
            "cudnn_disabled": args.ref_disable_cudnn,
            "source": "github.com/Thvnvtos/SNN-delays@d169b4e",
        },
        "delaynir": {k: v for k, v in dconf.items() if k != "seed"},
        "delaynir_overrides": args.delaynir_set,
    }
    with contextlib.ExitStack() as stack:
        out = args.out or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vs_dcls-")))
        runs = []
        for k, seed in enumerate(args.seeds):
            order = ("reference", "delaynir") if k % 2 == 0 else ("delaynir", "reference")
            print(f"seed {seed}: training {order[0]} then {order[1]} ...", file=sys.stderr, flush=True)
            runs.append(run_seed(seed, order, args, args.data, out))
    result = {"settings": settings, "runs": runs, "summary": summarise(runs)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
