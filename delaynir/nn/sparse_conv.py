"""Sparse causal delayed sum  y[t, b, j] = Σ_e v_e · x[t − k_e, b, i_e]  over a list of entries.

An entry e = (tap k_e, presynaptic i_e, postsynaptic j_e) with value v_e is one nonzero of
the (D, C_in, C_out) tap table of ``delay_conv.delayed_sum``; a sparse delay layer has
n ≪ D · C_in · C_out of them. x is time-first (T, B, C_in), y is (T, B, C_out), time before
0 is zero. Gradients: ∂L/∂v_e = Σ_{t,b} x[t − k_e, b, i_e] · gy[t, b, j_e] and
gx[t, b, i] = Σ_{e: i_e = i} v_e · gy[t + k_e, b, j_e].

Three exact strategies; per call and per part (forward, ∂L/∂v, ∂L/∂x) the one with the lowest
estimated cost runs (``_plan``). With E input events (nonzero x) and n entries:

* **events** (CPU): compiled kernels (``event_kernels``) scatter every event into the entries of
  its channel, and gather ∂L/∂v the same way. Cost ∝ E · n / C_in: both sparsities at once.
* **csr**: per tap k, a CSR matrix A_k (C_out × C_in) of the entries with tap k times the
  channel-major input shifted by k steps: y_cmᵀ = Σ_k A_k · X_k, and gxᵀ = Σ_k A_kᵀ · GY_k.
  Cost ∝ n · T · B. The input gradient always has this cost or the dense one (it is dense in t, b).
* **table**: scatter the entries into the dense table and use ``delayed_sum``'s event or dense
  kernels. Cost ∝ E · D · C_out (sparse input) or T · B · C_in · D · C_out.

RigL scores dormant candidates by their gradient, which the backward pass hands out as a
``CapturedGrad`` (``sink["grad"]``): computed only when connections are regrown, either for
every candidate (the full table gradient, as costly as the dense layer's weight gradient) or
for a sampled pool of candidates (event kernels, cost ∝ pool size).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from delaynir.nn import event_kernels
from delaynir.nn.delay_conv import (
    DEFAULT_SPARSE_THRESHOLD,
    _Events,
    _forward_dense,
    _forward_events,
    _input_grad,
    _table_grad_dense,
    _table_grad_events,
)

STRATEGIES = ("auto", "events", "csr", "table")

#: Relative throughputs (multiply-adds per ns) of the kernels on the 2-core development CPU,
#: measured at the anchor shape (benchmarks/sparse_delay.py). They only choose between exact
#: strategies, so a different machine changes speed, never results.
_RATE = {"events": 2.5, "csr": 25.0, "bag": 35.0, "gemm": 100.0}


class TapList:
    """Entries (tap, pre, post) of a sparse tap table for ``n_in`` → ``n_out`` channels and ``n_taps`` taps.

    ``flat`` indexes the entries in the flattened (n_taps, n_in, n_out) table. The per-tap CSR
    orderings are computed once per TapList; reuse one while the entries stay the same.
    """

    def __init__(self, tap: torch.Tensor, pre: torch.Tensor, post: torch.Tensor, n_in: int, n_out: int, n_taps: int):
        self.tap, self.pre, self.post = tap.long(), pre.long(), post.long()
        self.n_in, self.n_out, self.n_taps = n_in, n_out, n_taps
        self.flat = (self.tap * n_in + self.pre) * n_out + self.post
        self._plans: dict[bool | str, tuple] = {}

    def __len__(self) -> int:
        return self.tap.numel()

    def _plan_csr(self, transpose: bool) -> tuple:
        """(order, crow (D, rows + 1), columns, tap bounds) sorting entries by tap, row, column."""
        if transpose not in self._plans:
            rows, cols = (self.pre, self.post) if transpose else (self.post, self.pre)
            n_rows, n_cols = (self.n_in, self.n_out) if transpose else (self.n_out, self.n_in)
            order = torch.argsort((self.tap * n_rows + rows) * n_cols + cols)
            counts = torch.bincount(self.tap * n_rows + rows, minlength=self.n_taps * n_rows).view(self.n_taps, n_rows)
            crow = torch.zeros(self.n_taps, n_rows + 1, dtype=torch.long, device=self.tap.device)
            torch.cumsum(counts, 1, out=crow[:, 1:])
            ends = torch.cumsum(counts.sum(1), 0).tolist()
            bounds = list(zip([0] + ends[:-1], ends))
            self._plans[transpose] = (order, crow, cols.index_select(0, order), bounds, (n_rows, n_cols))
        return self._plans[transpose]

    def by_channel(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(order, ptr (n_in + 1,), off) for ``event_kernels``: entries sorted by (pre, tap, post),
        entries ptr[i] … ptr[i+1] − 1 of channel i, off = tap · n_out + post (int32) in that order."""
        if "channel" not in self._plans:
            order = torch.argsort(self.pre * (self.n_taps * self.n_out) + self.tap * self.n_out + self.post)
            ptr = torch.zeros(self.n_in + 1, dtype=torch.long, device=self.tap.device)
            torch.cumsum(torch.bincount(self.pre, minlength=self.n_in), 0, out=ptr[1:])
            off = (self.tap * self.n_out + self.post).index_select(0, order).to(torch.int32)
            self._plans["channel"] = (order, ptr, off)
        return self._plans["channel"]

    def matrices(self, values: torch.Tensor, transpose: bool) -> list[torch.Tensor | None]:
        """Per tap k, the CSR matrix A_k (n_out × n_in; its transpose when ``transpose``), None when empty."""
        order, crow, cols, bounds, size = self._plan_csr(transpose)
        vals = values.index_select(0, order)
        with warnings.catch_warnings():  # torch flags sparse CSR as beta on first use
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return [
                torch.sparse_csr_tensor(crow[k], cols[a:b], vals[a:b], size, check_invariants=False) if b > a else None
                for k, (a, b) in enumerate(bounds)
            ]


class _Plan(NamedTuple):
    forward: str  # events | csr | table
    values_grad: str  # events | table
    input_grad: str  # csr | table


def _plan(
    n: int,
    T: int,
    B: int,
    C_in: int,
    C_out: int,
    D: int,
    n_events: int,
    sparse_input: bool,
    strategy: str,
    events_ok: bool = True,
) -> _Plan:
    """The strategy of each part: ``strategy`` where forced, else whichever's estimated cost is lowest.

    ``n_events``: nonzero inputs; ``sparse_input``: the table strategy would use its event kernels;
    ``events_ok``: the compiled kernels can run (CPU, float32/float64).
    """
    if strategy == "events" and not events_ok:
        raise ValueError("strategy 'events' runs on CPU float32/float64 tensors only")
    if strategy != "auto":
        return _Plan(strategy, "events" if strategy == "events" else "table", "table" if strategy == "table" else "csr")
    events = n_events * n / C_in / _RATE["events"] if events_ok else float("inf")
    dense = T * B * C_in * D * C_out / _RATE["gemm"]
    table = n_events * D * C_out / _RATE["bag"] if sparse_input else dense
    csr = n * T * B / _RATE["csr"]
    forward = min((events, "events"), (csr, "csr"), (table, "table"))[1]
    return _Plan(forward, "events" if events < table else "table", "csr" if csr < dense else "table")


def _spmm_taps(mats, src_cm: torch.Tensor, n_rows: int, T: int, B: int, shift) -> torch.Tensor:
    """Σ_k mats[k] · src_cm[:, shift(k)·B : shift(k)·B + T·B] → (n_rows, T·B); taps k ≥ T read padding."""
    out = src_cm.new_zeros(n_rows, T * B)
    for k, a in enumerate(mats):
        if a is not None and k < T:
            start = shift(k) * B
            out.addmm_(a, src_cm[:, start : start + T * B])
    return out


class _SparseDelayedSum(torch.autograd.Function):
    @staticmethod
    @torch.amp.custom_fwd(device_type="cuda", cast_inputs=torch.float32)
    def forward(ctx, x, values, taps: TapList, sparse_threshold, strategy, sink):
        T, B, C_in = x.shape
        D, C_out = taps.n_taps, taps.n_out
        x = x.to(values.dtype)
        x2d = x.reshape(T * B, C_in)
        n_events = int(torch.count_nonzero(x2d))
        sparse_input = n_events <= sparse_threshold * x2d.numel()
        plan = _plan(len(taps), T, B, C_in, C_out, D, n_events, sparse_input, strategy, _events_ok(x, values.dtype))
        table = events = None
        if plan.forward == "events":
            order, ptr, off = taps.by_channel()
            y = event_kernels.scatter(x, ptr, off, values.index_select(0, order), D, C_out)
        elif plan.forward == "csr":
            x_cm = x2d.new_zeros(C_in, (D - 1 + T) * B)
            x_cm[:, (D - 1) * B :] = x2d.t()
            y_cm = _spmm_taps(taps.matrices(values, False), x_cm, C_out, T, B, lambda k: D - 1 - k)
            y = y_cm.t().contiguous()
        else:
            table = _scatter_table(values, taps)
            if sparse_input:
                events = _Events(x2d, D)
                y = _forward_events(events, table.view(D * C_in, C_out), T, B, D, C_in)
            else:
                y = _forward_dense(x2d, table, T, B)
        ctx.taps, ctx.plan, ctx.sparse_input, ctx.events, ctx.sink = taps, plan, sparse_input, events, sink
        ctx.save_for_backward(values, x, table)
        return y.view(T, B, C_out)

    @staticmethod
    @torch.amp.custom_bwd(device_type="cuda")
    def backward(ctx, gy):
        values, x, table = ctx.saved_tensors
        taps, plan = ctx.taps, ctx.plan
        T, B, C_in = x.shape
        D, C_out = taps.n_taps, taps.n_out
        gy = gy.to(values.dtype)
        gy2d = gy.reshape(T * B, C_out)
        g_x = g_values = None
        captured = CapturedGrad(x, gy2d, D, ctx.sparse_input, ctx.events)
        if ctx.sink is not None:
            ctx.sink["grad"] = captured
        if ctx.needs_input_grad[1]:
            if plan.values_grad == "table":
                captured.table()
            g_values = captured.at(taps)
        if ctx.needs_input_grad[0]:
            if plan.input_grad == "csr":
                gy_cm = gy2d.new_zeros(C_out, (T + D - 1) * B)
                gy_cm[:, : T * B] = gy2d.t()
                gx_cm = _spmm_taps(taps.matrices(values, True), gy_cm, C_in, T, B, lambda k: k)
                g_x = gx_cm.t().contiguous().view(T, B, C_in)
            else:
                table = table if table is not None else _scatter_table(values, taps)
                g_x = _input_grad(gy2d, table, T, B).view(T, B, C_in)
        return g_x, g_values, None, None, None, None


class CapturedGrad:
    """∂L/∂table of one backward pass (x and gy kept), computed on demand.

    ``table()``: the whole (D, C_in, C_out) gradient, costing as much as the dense layer's weight
    gradient (computed once, then kept); ``at(taps)``: the gradient at chosen entries, with the
    event kernels on the CPU (cost ∝ input events × entries per channel), else read from ``table()``.
    """

    def __init__(self, x: torch.Tensor, gy2d: torch.Tensor, D: int, sparse_input: bool, events: _Events | None = None):
        """``events``: the input's ``_Events`` when the forward pass already listed them (sparse input)."""
        self.x, self.gy2d, self.n_taps, self.sparse_input = x.detach(), gy2d.detach(), D, sparse_input
        self.events = events
        self._table: torch.Tensor | None = None

    @torch.no_grad()
    def table(self) -> torch.Tensor:
        if self._table is None:
            T, B, C_in = self.x.shape
            D, x2d = self.n_taps, self.x.reshape(T * B, C_in)
            if self.sparse_input:
                events = self.events if self.events is not None else _Events(x2d, D)
                g = _table_grad_events(events, self.gy2d, T, B, D, C_in)
            else:
                g = _table_grad_dense(x2d, self.gy2d, T, B, D)
            self._table = g.view(D, C_in, self.gy2d.shape[1])
        return self._table

    @torch.no_grad()
    def at(self, taps: TapList) -> torch.Tensor:
        """(len(taps),): ∂L/∂v_e of entries with these (tap, pre, post)."""
        if self._table is None and _events_ok(self.x, self.gy2d.dtype):
            order, ptr, off = taps.by_channel()
            g = event_kernels.gather(self.x, ptr, off, self.gy2d.view(*self.x.shape[:2], -1), self.n_taps)
            return torch.empty_like(g).index_copy_(0, order, g)
        return self.table().view(-1).index_select(0, taps.flat)


def _events_ok(x: torch.Tensor, dtype: torch.dtype) -> bool:
    """The compiled event kernels can run: CPU tensors of float32 or float64."""
    return x.device.type == "cpu" and dtype in (torch.float32, torch.float64)


def _scatter_table(values: torch.Tensor, taps: TapList) -> torch.Tensor:
    """The dense (D, C_in, C_out) table holding Σ of the values of each entry."""
    table = values.new_zeros(taps.n_taps * taps.n_in * taps.n_out)
    return table.index_add_(0, taps.flat, values).view(taps.n_taps, taps.n_in, taps.n_out)


def sparse_delayed_sum(
    x: torch.Tensor,
    values: torch.Tensor,
    taps: TapList,
    *,
    sparse_threshold: float = DEFAULT_SPARSE_THRESHOLD,
    strategy: str = "auto",
    sink: dict | None = None,
) -> torch.Tensor:
    """y[t, b, j] = Σ_e values[e] · x[t − taps.tap[e], b, taps.pre[e]] summed into j = taps.post[e].

    x: (T, B, C_in); values: (n,), same order as ``taps``. Differentiable in x and values.
    ``strategy``: ``auto`` (by estimated cost), or force ``events`` (CPU) / ``csr`` / ``table`` (all exact).
    ``sink``: a dict that receives, in the backward pass, ``grad``: a ``CapturedGrad`` giving
    ∂L/∂table (D, C_in, C_out) or its value at chosen entries on demand.
    """
    if x.dim() != 3 or x.shape[2] != taps.n_in or values.shape != (len(taps),):
        raise ValueError(
            f"sparse_delayed_sum expects x (T, B, {taps.n_in}) and {len(taps)} values; "
            f"got {tuple(x.shape)} and {tuple(values.shape)}"
        )
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    return _SparseDelayedSum.apply(x, values, taps, sparse_threshold, strategy, sink)
