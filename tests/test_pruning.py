"""Sparse delay layers and dynamic pruning: kernel exactness, the budget, removal, RigL choice, signs,
determinism, training, compilation."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delaynir.cli import main
from delaynir.compile.compiler import compile_model
from delaynir.data import SpikeDataset, make_loader
from delaynir.errors import ConfigError
from delaynir.hardware.profile import load_target
from delaynir.nn import DelayLinear, delayed_sum
from delaynir.nn.model import summed_softmax
from delaynir.nn.rewiring import Rewiring
from delaynir.nn.sparse_conv import TapList, _plan, sparse_delayed_sum
from delaynir.nn.sparse_delay import SparseDelayLinear
from delaynir.reference.simulate import simulate
from delaynir.train import checkpoints
from delaynir.train.config import make_config
from delaynir.train.loop import train
from delaynir.train.run_dir import Run

TINY = {
    "hidden": [12],
    "max_delay": 8,
    "epochs": 2,
    "batch_size": 16,
    "lr": 5e-3,
    "dropout": 0.2,
    "val_fraction": 0.25,
    "n_steps": 40,
    "batchnorm": False,
}


def reference(layer: SparseDelayLinear, x: torch.Tensor) -> torch.Tensor:
    """y[t, b, j] = Σ_cells w · x[t − d, b, i] from synapse_table(), cell by cell (deployed semantics)."""
    w, d = layer.synapse_table()
    T = x.shape[0]
    y = torch.zeros(T, x.shape[1], layer.out_features, dtype=x.dtype)
    for j, col in w.nonzero().tolist():
        k, i = int(d[j, col]), col % layer.in_features
        if k < T:
            y[k:, :, j] += w[j, col] * x[: T - k, :, i]
    return y + (layer.bias.detach() if layer.bias is not None else 0)


@settings(max_examples=20, deadline=None)
@given(
    T=st.integers(1, 10),
    B=st.integers(1, 3),
    C_in=st.integers(1, 5),
    C_out=st.integers(1, 4),
    D=st.integers(1, 8),
    n=st.integers(1, 30),
    density=st.sampled_from([0.0, 0.1, 0.6]),
    strategy=st.sampled_from(["events", "csr", "table"]),
    seed=st.integers(0, 2**16),
)
def test_sparse_kernel_matches_the_dense_delayed_sum(T, B, C_in, C_out, D, n, density, strategy, seed):
    g = torch.Generator().manual_seed(seed)
    n = min(n, D * C_in * C_out)
    flat = torch.randperm(D * C_in * C_out, generator=g)[:n]
    taps = TapList(flat // (C_in * C_out), (flat // C_out) % C_in, flat % C_out, C_in, C_out, D)
    x = (torch.rand(T, B, C_in, generator=g, dtype=torch.float64) < density).double()
    v = torch.randn(n, generator=g, dtype=torch.float64)
    table = torch.zeros(D * C_in * C_out, dtype=torch.float64).index_put((flat,), v).view(D, C_in, C_out)
    x1, v1, x2, t2 = (
        x.clone().requires_grad_(),
        v.clone().requires_grad_(),
        x.clone().requires_grad_(),
        table.clone().requires_grad_(),
    )
    sink = {}
    y1 = sparse_delayed_sum(x1, v1, taps, strategy=strategy, sink=sink)
    y2 = delayed_sum(x2, t2)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    gy = torch.randn(y1.shape, generator=g, dtype=torch.float64)
    (y1 * gy).sum().backward()
    (y2 * gy).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(v1.grad, t2.grad.reshape(-1)[flat], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sink["grad"].at(taps), t2.grad.reshape(-1)[flat], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sink["grad"].table(), t2.grad, rtol=1e-12, atol=1e-12)


def test_event_kernels_in_float32_match_the_table_strategy_on_non_contiguous_input():
    g = torch.Generator().manual_seed(5)
    T, B, C_in, C_out, D, n = 30, 5, 12, 9, 6, 40
    flat = torch.randperm(D * C_in * C_out, generator=g)[:n]
    taps = TapList(flat // (C_in * C_out), (flat // C_out) % C_in, flat % C_out, C_in, C_out, D)
    x = (torch.rand(B, T, C_in, generator=g) < 0.1).float().transpose(0, 1)  # (T, B, C_in), not contiguous
    x = x * torch.randint(1, 4, x.shape, generator=g)  # graded spikes
    v = torch.randn(n, generator=g)
    gy = torch.randn(T, B, C_out, generator=g)
    grads = {}
    for strategy in ("events", "table"):
        x_, v_ = x.clone().requires_grad_(), v.clone().requires_grad_()
        y = sparse_delayed_sum(x_, v_, taps, strategy=strategy)
        (y * gy).sum().backward()
        grads[strategy] = (y.detach(), x_.grad, v_.grad)
    for a, b in zip(grads["events"], grads["table"]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_cost_plan_follows_the_budget_at_the_anchor_shape():
    T, B, C_in, C_out, D = 100, 64, 140, 256, 25
    events = int(0.05 * T * B * C_in)
    n_all = D * C_in * C_out
    dense = _plan(n_all, T, B, C_in, C_out, D, events, True, "auto")
    assert dense == ("table", "table", "table")
    sparse = _plan(n_all // 32, T, B, C_in, C_out, D, events, True, "auto")  # 1 − 2^-5
    assert sparse == ("events", "events", "csr")
    assert _plan(n_all // 32, T, B, C_in, C_out, D, events, True, "auto", events_ok=False) == ("csr", "table", "csr")
    with pytest.raises(ValueError, match="CPU"):
        _plan(n_all // 32, T, B, C_in, C_out, D, events, True, "events", events_ok=False)


def test_the_full_table_gradient_is_computed_only_when_connections_are_regrown(monkeypatch):
    import delaynir.nn.sparse_conv as sparse_conv

    calls = []
    full = sparse_conv._table_grad_events
    monkeypatch.setattr(sparse_conv, "_table_grad_events", lambda *a: calls.append(1) or full(*a))
    torch.manual_seed(2)
    layer = SparseDelayLinear(40, 30, 8, structure="taps", sparsity=0.97, signs="random", bias=False)
    rewiring = Rewiring([layer], method="deepr-rigl", interval=1)
    optimizer = torch.optim.SGD([layer.theta], lr=0.0)
    x = (torch.rand(10, 2, 40) < 0.1).float()
    for step, removed in enumerate([0, 2]):
        rewiring.prepare(step)
        layer(x).sum().backward()
        with torch.no_grad():
            layer.theta[:removed] = -1.0
        rewiring.after_step(optimizer, step)
        assert len(calls) == (1 if removed else 0)
    assert layer.active_count() == layer.budget


@pytest.mark.parametrize("kernel", ["gaussian", "rounded"])
def test_dense_pairs_layer_equals_delay_linear(kernel):
    torch.manual_seed(0)
    dense = DelayLinear(6, 5, 7, bias=True, kernel=kernel).double()
    sparse = SparseDelayLinear(6, 5, 7, structure="pairs", sparsity=0.0, bias=True, kernel=kernel).double()
    _, pre, post = sparse.decode(sparse.candidate)
    with torch.no_grad():
        sparse.theta.copy_(dense.weight[post, pre])
        sparse.positions.copy_(dense.positions)
        sparse.bias.copy_(dense.bias)
    x = (torch.rand(12, 2, 6, dtype=torch.float64) < 0.3).double()
    y_dense, y_sparse = dense(x), sparse(x)
    torch.testing.assert_close(y_sparse, y_dense, rtol=1e-12, atol=1e-12)
    (y_dense.square().sum()).backward()
    (y_sparse.square().sum()).backward()
    torch.testing.assert_close(sparse.theta.grad, dense.weight.grad[post, pre], rtol=1e-10, atol=1e-12)
    if kernel == "gaussian":
        torch.testing.assert_close(sparse.positions.grad, dense.positions.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "structure,delays", [("pairs", "learned"), ("pairs", "fixed-random"), ("pairs", "none"), ("taps", "learned")]
)
def test_eval_forward_is_the_deployed_synapse_list(structure, delays):
    torch.manual_seed(1)
    layer = SparseDelayLinear(7, 4, 6, structure=structure, sparsity=0.7, signs="random", delays=delays)
    layer = layer.double().eval()
    x = (torch.rand(15, 3, 7, dtype=torch.float64) < 0.2).double()
    torch.testing.assert_close(layer(x), reference(layer, x), rtol=1e-12, atol=1e-12)


def _toy_steps(layer, rewiring, optimizer, n_steps, check):
    """Fit the layer's output to a random target; ``check(step)`` after every rewiring call."""
    g = torch.Generator().manual_seed(5)
    for step in range(n_steps):
        x = (torch.rand(10, 4, layer.in_features, generator=g) < 0.3).float()
        target = torch.randn(10, 4, layer.out_features, generator=g)
        rewiring.prepare(step)
        loss = (layer(x) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        rewiring.add_l1_grad()
        optimizer.step()
        rewiring.after_step(optimizer, step)
        check(step)


@pytest.mark.parametrize("structure", ["pairs", "taps"])
@pytest.mark.parametrize("method,interval", [("deepr-rigl", 1), ("deepr-random", 3)])
def test_active_count_is_the_budget_after_every_rewiring_step(structure, method, interval):
    torch.manual_seed(2)
    layer = SparseDelayLinear(8, 6, 5, structure=structure, sparsity=0.75, signs="dale")
    signs_before = layer.candidate_sign.clone()
    rewiring = Rewiring([layer], method=method, l1=0.05, temperature=1e-4, interval=interval)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)

    def check(step):
        active = layer.active_count()
        assert active == layer.budget if rewiring.is_rewiring_step(step) else active <= layer.budget
        assert layer.candidate[layer.alive].unique().numel() == active  # no candidate twice
        assert bool((layer.theta[~layer.alive] == 0).all()) and bool((layer.theta[layer.alive] > 0).all())
        w = layer.slot_weight().detach()
        assert bool((w * layer.candidate_sign[layer.candidate] >= 0).all())  # every weight has its fixed sign

    _toy_steps(layer, rewiring, optimizer, 12, check)
    metrics = rewiring.epoch_metrics()
    assert metrics["removed"][0] > 0 and metrics["active_connections"] == [layer.budget]
    assert sum(metrics["regrown"]) == metrics["removed"][0] - (layer.budget - layer.active_count())
    assert torch.equal(layer.candidate_sign, signs_before)
    _, pre, _ = layer.decode(torch.arange(layer.n_candidates))
    per_pre = torch.zeros(layer.in_features, dtype=torch.int8).index_put_((pre,), layer.candidate_sign)
    assert torch.equal(layer.candidate_sign, per_pre[pre])  # Dale: one sign per presynaptic neuron


@pytest.mark.parametrize("structure", ["pairs", "taps"])
def test_a_removed_connection_contributes_exactly_zero_in_the_next_forward_pass(structure):
    torch.manual_seed(3)
    layer = SparseDelayLinear(5, 3, 4, structure=structure, sparsity=0.5, signs="random").double().eval()
    rewiring = Rewiring([layer], method="deepr-rigl", interval=2)  # step 0 is no rewiring step: no regrowth
    optimizer = torch.optim.SGD([layer.theta], lr=1.0)
    slot = 0
    layer.theta.grad = torch.zeros_like(layer.theta)
    layer.theta.grad[slot] = layer.theta[slot].item() + 0.5  # the step takes θ to −0.5
    optimizer.step()
    x = (torch.rand(12, 2, 5, dtype=torch.float64) < 0.4).double()
    with torch.no_grad():
        flipped = layer(x)  # θ < 0: the connection would act with the opposite sign
    rewiring.after_step(optimizer, 0)
    assert not layer.alive[slot] and layer.theta[slot].item() == 0.0
    assert layer.active_count() == layer.budget - 1
    with torch.no_grad():
        y = layer(x)
    torch.testing.assert_close(y, reference(layer, x), rtol=0, atol=1e-12)
    assert not torch.allclose(y, flipped)
    w, _ = layer.synapse_table()
    assert (w != 0).sum() == layer.budget - 1


def test_rigl_regrows_the_dormant_candidates_with_the_most_favourable_gradient():
    torch.manual_seed(4)
    C_in, C_out, D = 3, 4, 5
    layer = SparseDelayLinear(C_in, C_out, D, structure="taps", sparsity=0.8, signs="random", bias=False).double()
    sign = layer.candidate_sign.double().view(D, C_in, C_out)
    alive = layer.alive_candidates().view(D, C_in, C_out)
    # one spike on input 0 at t = 0, loss L = Σ y · gy  ⇒  ∂L/∂w(k, 0, j) = gy[k, j], 0 for inputs 1, 2
    gain = torch.rand(D, C_out, dtype=torch.float64) * 0.1
    favoured = [(k, j) for k in range(D) for j in range(C_out) if not alive[k, 0, j]][:3]
    for k, j in favoured:
        gain[k, j] = 10.0 + k + j
    hurt = [(k, j) for k in range(D) for j in range(C_out) if not alive[k, 0, j]][3]
    gain[hurt] = -50.0  # growing it with its sign would raise the loss
    taken = next((k, j) for k in range(D) for j in range(C_out) if alive[k, 0, j])
    gain[taken] = 100.0  # alive already: not a candidate
    gy = torch.zeros(D + 2, 1, C_out, dtype=torch.float64)
    gy[:D, 0] = -sign[:, 0, :] * gain  # so that −sign · ∂L/∂w = gain
    x = torch.zeros(D + 2, 1, C_in, dtype=torch.float64)
    x[0, 0, 0] = 1.0
    rewiring = Rewiring([layer], method="deepr-rigl", magnitude=0.01, interval=1)
    optimizer = torch.optim.SGD([layer.theta], lr=0.0)
    rewiring.prepare(0)
    (layer(x) * gy).sum().backward()
    with torch.no_grad():
        layer.theta[:3] = -1.0  # three removals to replace
    rewiring.after_step(optimizer, 0)
    grown = {(int(c) // (C_in * C_out), int(c) % C_out) for c in layer.candidate[:3]}
    assert {int(c) // C_out % C_in for c in layer.candidate[:3]} == {0}
    assert grown == set(favoured)
    assert torch.equal(layer.theta[:3].detach(), torch.full((3,), 0.01, dtype=torch.float64))


def test_pairs_regrowth_score_is_the_gradient_of_a_grown_synapse_at_its_delay():
    torch.manual_seed(6)
    layer = SparseDelayLinear(5, 4, 6, structure="pairs", sparsity=0.6, signs="random", bias=False).double()
    layer.sigma = 1.5
    dense = DelayLinear(5, 4, 6, bias=False, sigma=1.5).double()
    with torch.no_grad():
        dense.positions.copy_(layer.positions)
        w, _ = layer.synapse_table()
        dense.weight.copy_(w)  # dormant pairs: weight 0
    x = (torch.rand(14, 3, 5, dtype=torch.float64) < 0.3).double()
    gy = torch.randn(14, 3, 4, dtype=torch.float64)
    layer.capture_grad = True
    (layer(x) * gy).sum().backward()
    (dense(x) * gy).sum().backward()
    torch.testing.assert_close(layer.candidate_gradient(), dense.weight.grad.t().reshape(-1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("structure,kernel", [("taps", "auto"), ("pairs", "gaussian"), ("pairs", "rounded")])
def test_gradient_of_a_candidate_list_equals_the_full_candidate_gradient(structure, kernel):
    torch.manual_seed(8)
    layer = SparseDelayLinear(
        7, 6, 5, structure=structure, sparsity=0.7, signs="random", kernel=kernel, bias=False
    ).double()
    x = (torch.rand(12, 3, 7, dtype=torch.float64) < 0.3).double()
    layer.capture_grad = True
    (layer(x) * torch.randn(12, 3, 6, dtype=torch.float64)).sum().backward()
    some = torch.randperm(layer.n_candidates)[:17]
    pooled = layer.candidate_gradient(some)  # computed first: from the event kernels, not the full table
    torch.testing.assert_close(pooled, layer.candidate_gradient()[some], rtol=1e-10, atol=1e-12)


def test_pooled_rigl_regrows_the_best_candidates_of_its_random_pool():
    torch.manual_seed(9)
    layer = SparseDelayLinear(10, 8, 6, structure="taps", sparsity=0.9, signs="random", bias=False).double()
    rewiring = Rewiring([layer], method="deepr-rigl", interval=1, pool=4, seed=3)
    drawn = []
    sample = layer.sample_dormant
    layer.sample_dormant = lambda m: drawn.append(sample(m)) or drawn[-1]
    rewiring.prepare(0)
    (layer((torch.rand(15, 4, 10) < 0.3).double()) * torch.randn(15, 4, 8, dtype=torch.float64)).sum().backward()
    every = torch.arange(layer.n_candidates)
    full = layer.regrowth_scores(layer.candidate_gradient(), every)  # no mask: removed ones may be drawn
    with torch.no_grad():
        layer.theta[:5] = -1.0
    rewiring.after_step(torch.optim.SGD([layer.theta], lr=0.0), 0)
    (pool,) = drawn
    assert pool.numel() == 4 * 5 and layer.active_count() == layer.budget
    grown = layer.candidate[:5]
    assert set(grown.tolist()) <= set(pool.tolist())
    assert set(grown.tolist()) == set(pool[full[pool].topk(5).indices].tolist())


def test_sparse_settings_are_validated():
    with pytest.raises(ConfigError, match="dale needs a pruning method"):
        make_config({"dale": True})
    with pytest.raises(ConfigError, match="sparsity must be in"):
        make_config({"sparsity": 1.0})
    with pytest.raises(ConfigError, match="prune must be one of"):
        make_config({"prune": "magnitude"})


def _state(run_dir):
    return checkpoints.load_pt(run_dir / checkpoints.CHECKPOINT)["model"]


def test_pruned_runs_are_deterministic_and_resume_exactly(tiny_data, tmp_path, monkeypatch):
    config = make_config(
        dict(TINY, sparsity=0.75, prune="deepr-random", structure="taps", prune_temperature=1e-5, prune_l1=1e-3)
    )
    train(config, tiny_data, tmp_path / "a")
    train(config, tiny_data, tmp_path / "b")
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert {"delays.0.candidate", "delays.0.alive", "delays.0.candidate_sign", "delays.0.theta"} <= a.keys()

    import delaynir.train.loop as train_module

    real = train_module.evaluate_model
    calls = {"n": 0}

    def crash_in_epoch_two(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate_model", crash_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(config, tiny_data, tmp_path / "c")
    monkeypatch.setattr(train_module, "evaluate_model", real)
    train(config, tiny_data, tmp_path / "c", resume=True)
    c = _state(tmp_path / "c")
    assert all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.parametrize("structure", ["pairs", "taps"])
def test_pruned_model_trains_and_compiles_to_the_same_predictions(tiny_data, tmp_path, structure):
    out = tmp_path / structure
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny_data),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--hidden",
                "12",
                "--max-delay",
                "8",
                "--batch-size",
                "16",
                "--sparsity",
                "0.5",
                "--prune",
                "deepr-rigl",
                "--structure",
                structure,
                "--json",
            ]
        )
        == 0
    )
    rows = checkpoints.read_metrics(out)
    model = Run(out).model
    budget = model.sparse_layers()[0].budget
    assert [r["active_connections"] for r in rows] == [[budget]] * 2
    assert all({"removed", "regrown", "connection_budget"} <= r.keys() for r in rows)
    graph, report = compile_model(model, load_target("float"))
    assert report.layers[0]["synapses"] == budget
    ds = SpikeDataset(tiny_data / "test.h5", dt=0.01, n_steps=40, pool=1)
    x, _ = next(iter(make_loader(ds, list(range(len(ds))), batch_size=len(ds), shuffle=False)))
    with torch.no_grad():
        expected = summed_softmax(model(x)).argmax(1)
    assert torch.equal(simulate(graph, x).predictions, expected)
    if structure == "taps":
        proj = graph.layers[0].projections[0]
        pairs = {(int(p), int(q)) for p, q in zip(proj.pre, proj.post)}
        assert len(pairs) < budget  # several delays between one pair: one synapse per tap
