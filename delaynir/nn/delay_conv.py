"""Causal delayed sum  y[t] = Σ_k Σ_i x[t − k, i] · K[k, i, :]  over integer taps k = 0 … D−1.

This is the one compute kernel behind every delay layer. ``K`` is the *tap table*
of shape (D, C_in, C_out): row (k, i) holds what input channel i contributes to
every output channel when delayed by k steps. A DCLS layer's Gaussian kernel and a
deployed layer's one-hot kernel (one tap per synapse) are both tap tables.

Inputs are time-first (T, B, C_in); the output is (T, B, C_out). Time before 0
is zero (causal: y[t] never depends on x[t' > t]).

Two evaluation strategies give the same result up to float summation order:

* **events** (sparse input, e.g. 5 % spikes): each nonzero x[t', b, i] is an
  event; the output row (t, b) is the sum of table rows (k, i) over the events
  at (t − k, b), computed with ``F.embedding_bag``. Its weight gradient is the
  transposed bag: dK[k, i] = Σ_events(i) x · gy[t' + k, b]. Cost grows with
  events × D × C_out instead of T × B × C_in × D × C_out.
* **dense** (high input density): D shifted matrix products
  y[k:] += x[:T−k] @ K[k].

* **spectral** (training, when gradients are needed): the same linear convolution in the
  frequency domain (``delaynir.nn.spectral``): a real DFT of length N = T + D − 1 (long enough
  that nothing wraps around) turns the D-tap convolution into one complex matrix product per
  frequency, about (N/2 + 1) · 4 real multiply-adds per (b, i, j) instead of T · D, for the
  forward pass, the table gradient and the input gradient alike.
  Exact up to float rounding (relative error ~1e-6 in float32), whatever σ.

The input gradient, needed by hidden layers, is dense:
gx[t] = Σ_k gy[t + k] @ K[k]ᵀ, as D shifted matrix products or spectrally.

``strategy="auto"`` picks the cheapest by an estimated cost (``choose_strategy``); the spectral
strategy is only chosen when a gradient is needed, so evaluation and deployment-side code keep
the exact sums of the event and dense strategies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from delaynir.nn.spectral import n_frequencies, spectral_delayed_sum

#: Input density (fraction of nonzero entries) above which the dense strategy is used.
DEFAULT_SPARSE_THRESHOLD = 0.15
STRATEGIES = ("auto", "events", "dense", "spectral")
#: Cost of one operation of each strategy in dense matrix-product multiply-adds (measured on CPU at
#: the anchor shape, benchmarks/delay_layer.py): an event's table-row add, a spectral batched-product
#: multiply-add (smaller matrices), a DFT multiply-add (a short inner dimension, memory-bound).
EVENT_COST, SPECTRAL_COST, TRANSFORM_COST = 3.4, 1.0, 1.5


def choose_strategy(
    T: int,
    B: int,
    C_in: int,
    C_out: int,
    D: int,
    n_events: int,
    *,
    sparse_threshold: float,
    x_grad: bool,
    table_grad: bool,
) -> str:
    """The cheapest strategy by estimated cost; ``spectral`` only when a gradient is needed.

    Without gradients the choice is the exact sum: ``events`` at input density ≤ ``sparse_threshold``,
    else ``dense``. With gradients, the direct strategies cost a forward pass, a table-gradient pass
    of the same kind and a dense input-gradient pass; the spectral one costs four real batched
    products per frequency and pass (``delaynir.nn.spectral``) plus its transforms.
    """
    taps = min(D, T)
    dense_pass = T * B * C_in * C_out * taps
    direct = "events" if n_events <= sparse_threshold * T * B * C_in else "dense"
    if not (x_grad or table_grad):
        return direct
    direct_pass = EVENT_COST * n_events * taps * C_out if direct == "events" else dense_pass
    direct_cost = direct_pass * (1 + table_grad) + dense_pass * x_grad
    freqs = n_frequencies(T, taps)
    passes = 1 + x_grad + table_grad
    transforms = 2 * freqs * (T * B * (C_in + C_out) * (1 + x_grad) + taps * C_in * C_out * (1 + table_grad))
    spectral_cost = SPECTRAL_COST * 4 * freqs * B * C_in * C_out * passes + TRANSFORM_COST * transforms
    return "spectral" if spectral_cost < direct_cost else direct


class _Events:
    """Nonzero entries of a (T·B, C) matrix, in row-major order.

    rows, cols: (E,) indices; vals: (E,) values, or None when every value is 1;
    row_start: (T·B + 1,) exclusive prefix sums of events per row. Indices are int32
    (halving the index traffic that dominates the event strategy) when they fit.
    """

    def __init__(self, x2d: torch.Tensor, D: int):
        nz = x2d.nonzero()
        self.index_dtype = torch.int32 if x2d.numel() * D < 2**31 - 1 else torch.int64
        rows, cols = nz[:, 0], nz[:, 1]
        vals = x2d[rows, cols]
        self.vals = None if bool((vals == 1).all()) else vals
        self.rows, self.cols = rows.to(self.index_dtype), cols.to(self.index_dtype)
        counts = torch.bincount(rows, minlength=x2d.shape[0])
        self.row_start = torch.zeros(x2d.shape[0] + 1, dtype=self.index_dtype, device=x2d.device)
        torch.cumsum(counts, 0, out=self.row_start[1:])


def _expand_ranges(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenation of the index ranges [starts[g], starts[g] + lengths[g]) over segments g, in order."""
    total = int(lengths.sum())
    offsets = torch.cumsum(lengths, 0, dtype=starts.dtype) - lengths
    idx = torch.repeat_interleave(starts - offsets, lengths, output_size=total)
    return idx.add_(torch.arange(total, dtype=idx.dtype, device=idx.device))


def _forward_events(ev: _Events, table2d: torch.Tensor, T: int, B: int, D: int, C_in: int) -> torch.Tensor:
    """Output row (t, b) = Σ of table rows k·C_in + i over the events (t − k, b, i), one bag per row.

    Bag of (t, b): for k = 0 … D − 1, the events of source row (t − k)·B + b, each
    read from the copy k of the event columns shifted by k·C_in.
    """
    idt, device = ev.index_dtype, table2d.device
    n_ev = ev.cols.numel()
    taps = torch.arange(D, dtype=idt, device=device)
    cols_by_tap = (ev.cols[None, :] + taps[:, None] * C_in).reshape(-1)  # (D·E,)
    src = (torch.arange(T * B, dtype=idt, device=device)[:, None] - taps[None, :] * B).reshape(-1)  # (T·B·D,)
    valid = src >= 0
    src = src.clamp(min=0)
    start = ev.row_start.index_select(0, src)  # index_select: several times faster than x[idx] on CPU
    lengths = torch.where(valid, ev.row_start.index_select(0, src + 1) - start, 0)
    pos = _expand_ranges((taps[None, :] * n_ev).expand(T * B, D).reshape(-1) + start, lengths)
    bag_idx = cols_by_tap.index_select(0, pos)
    per_bag = lengths.view(T * B, D).sum(1, dtype=idt)
    offsets = torch.cumsum(per_bag, 0, dtype=idt) - per_bag
    weights = None if ev.vals is None else ev.vals.to(table2d.dtype).repeat(D).index_select(0, pos)
    return F.embedding_bag(bag_idx, table2d, offsets, mode="sum", per_sample_weights=weights)


def _table_grad_events(ev: _Events, gy2d: torch.Tensor, T: int, B: int, D: int, C_in: int) -> torch.Tensor:
    """dK[k·C_in + i] = Σ over events e of channel i: x_e · gy[row_e + k·B] (rows past T are 0)."""
    idt, device = ev.index_dtype, gy2d.device
    order = torch.argsort(ev.cols, stable=True)
    rows, cols = ev.rows.index_select(0, order), ev.cols.index_select(0, order)
    n_ev = rows.numel()
    per_ch = torch.bincount(cols, minlength=C_in).to(idt)
    ch_start = torch.cumsum(per_ch, 0, dtype=idt) - per_ch
    taps = torch.arange(D, dtype=idt, device=device)
    gy_pad = torch.cat([gy2d, gy2d.new_zeros(D * B, gy2d.shape[1])])
    idx = (rows[None, :] + taps[:, None] * B).reshape(-1)
    offsets = (taps[:, None] * n_ev + ch_start[None, :]).reshape(-1)
    weights = None if ev.vals is None else ev.vals.index_select(0, order).to(gy2d.dtype).repeat(D)
    return F.embedding_bag(idx, gy_pad, offsets, mode="sum", per_sample_weights=weights)


def _forward_dense(x2d: torch.Tensor, table: torch.Tensor, T: int, B: int) -> torch.Tensor:
    D = table.shape[0]
    y = x2d.new_zeros(T * B, table.shape[2])
    for k in range(min(D, T)):
        y[k * B :].addmm_(x2d[: (T - k) * B], table[k])
    return y


def _table_grad_dense(x2d: torch.Tensor, gy2d: torch.Tensor, T: int, B: int, D: int) -> torch.Tensor:
    g = gy2d.new_zeros(D, x2d.shape[1], gy2d.shape[1])
    for k in range(min(D, T)):
        torch.mm(x2d[: (T - k) * B].t(), gy2d[k * B :], out=g[k])
    return g


def _input_grad(gy2d: torch.Tensor, table: torch.Tensor, T: int, B: int) -> torch.Tensor:
    D = table.shape[0]
    gx = gy2d.new_zeros(T * B, table.shape[1])
    for k in range(min(D, T)):
        gx[: (T - k) * B].addmm_(gy2d[k * B :], table[k].t())
    return gx


class _DelayedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, use_events):
        T, B, C_in = x.shape
        D, _, C_out = table.shape
        x2d = x.reshape(T * B, C_in)
        if use_events:
            ev = _Events(x2d, D)
            y = _forward_events(ev, table.reshape(D * C_in, C_out), T, B, D, C_in)
            ctx.events = ev
            ctx.save_for_backward(table)
        else:
            y = _forward_dense(x2d.to(table.dtype), table, T, B)
            ctx.events = None
            ctx.save_for_backward(table, x2d)
        ctx.shape = (T, B, C_in)
        return y.view(T, B, C_out)

    @staticmethod
    def backward(ctx, gy):
        T, B, C_in = ctx.shape
        table = ctx.saved_tensors[0]
        D, _, C_out = table.shape
        gy2d = gy.reshape(T * B, C_out)
        g_table = g_x = None
        if ctx.needs_input_grad[1]:
            if ctx.events is not None:
                g_table = _table_grad_events(ctx.events, gy2d, T, B, D, C_in).view(D, C_in, C_out)
            else:
                g_table = _table_grad_dense(ctx.saved_tensors[1], gy2d, T, B, D)
        if ctx.needs_input_grad[0]:
            g_x = _input_grad(gy2d, table, T, B).view(T, B, C_in)
        return g_x, g_table, None


def delayed_sum(
    x: torch.Tensor,
    table: torch.Tensor,
    *,
    sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
    strategy: str = "auto",
) -> torch.Tensor:
    """y[t, b, :] = Σ_{k, i} x[t − k, b, i] · table[k, i, :] (causal; zero before t = 0).

    x: (T, B, C_in); table: (D, C_in, C_out), same dtype and device as x. ``strategy`` ``auto``
    picks by ``choose_strategy`` (events up to ``sparse_threshold`` input density, else dense;
    spectral when gradients are needed and it is cheaper); ``events``, ``dense`` or ``spectral``
    force one. Differentiable in both arguments.
    """
    if x.dim() != 3 or table.dim() != 3 or x.shape[2] != table.shape[1]:
        raise ValueError(
            f"delayed_sum expects x (T, B, C_in) and table (D, C_in, C_out); got {tuple(x.shape)} and "
            f"{tuple(table.shape)}"
        )
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    T, B, C_in = x.shape
    if strategy == "auto":
        grad = torch.is_grad_enabled()
        n_events = int((x != 0).sum())
        strategy = choose_strategy(
            T,
            B,
            C_in,
            table.shape[2],
            table.shape[0],
            n_events,
            sparse_threshold=sparse_threshold,
            x_grad=grad and x.requires_grad,
            table_grad=grad and table.requires_grad,
        )
    if strategy == "spectral":
        return spectral_delayed_sum(x, table)
    return _DelayedSum.apply(x, table, strategy == "events")
