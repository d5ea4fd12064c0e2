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

The input gradient, needed by hidden layers, is dense in both cases:
gx[t] = Σ_k gy[t + k] @ K[k]ᵀ, as D shifted matrix products.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


#: Input density (fraction of nonzero entries) above which the dense strategy is used.
DEFAULT_SPARSE_THRESHOLD = 0.15


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
    def forward(ctx, x, table, sparse_threshold):
        T, B, C_in = x.shape
        D, _, C_out = table.shape
        x2d = x.reshape(T * B, C_in)
        density = float((x2d != 0).sum()) / max(x2d.numel(), 1)
        use_events = density <= sparse_threshold
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
    x: torch.Tensor, table: torch.Tensor, *, sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD
) -> torch.Tensor:
    """y[t, b, :] = Σ_{k, i} x[t − k, b, i] · table[k, i, :] (causal; zero before t = 0).

    x: (T, B, C_in); table: (D, C_in, C_out), same dtype and device as x. Inputs with at
    most ``sparse_threshold`` nonzero entries use the event strategy, others the dense
    one. Differentiable in both arguments.
    """
    if x.dim() != 3 or table.dim() != 3 or x.shape[2] != table.shape[1]:
        raise ValueError(
            f"delayed_sum expects x (T, B, C_in) and table (D, C_in, C_out); got {tuple(x.shape)} and "
            f"{tuple(table.shape)}"
        )
    return _DelayedSum.apply(x, table, sparse_threshold)
