"""The delay layer: exact integer-delay semantics, Gaussian training kernels, gradients, causality."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from delaynir.errors import ConfigError, ShapeError
from delaynir.nn import DelayLinear, delayed_sum, gaussian_taps
from delaynir.nn.delay import _GaussianTable


def shift_and_sum(x, weight, delays):
    """Reference: y[t, b, j] = Σ_i w[j, i] · x[t − d[j, i], b, i], written synapse by synapse."""
    T, B, _ = x.shape
    out = torch.zeros(T, B, weight.shape[0], dtype=x.dtype)
    for j in range(weight.shape[0]):
        for i in range(weight.shape[1]):
            d = int(delays[j, i])
            if d < T:
                out[d:, :, j] += weight[j, i] * x[: T - d, :, i]
    return out


def dense_delayed_sum(x, table):
    """Reference for delayed_sum with an arbitrary (D, C_in, C_out) table, tap by tap."""
    T = x.shape[0]
    y = torch.zeros(T, x.shape[1], table.shape[2], dtype=x.dtype)
    for k in range(table.shape[0]):
        if k < T:
            y[k:] += torch.einsum("tbi,ij->tbj", x[: T - k], table[k])
    return y


@settings(max_examples=25, deadline=None)
@given(
    T=st.integers(1, 12),
    B=st.integers(1, 3),
    C_in=st.integers(1, 6),
    C_out=st.integers(1, 5),
    D=st.integers(1, 15),
    density=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
    graded=st.booleans(),
    strategy=st.sampled_from(["events", "dense", "spectral"]),
    seed=st.integers(0, 2**16),
)
def test_delayed_sum_matches_reference_in_value_and_gradient(T, B, C_in, C_out, D, density, graded, strategy, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, C_in, generator=g, dtype=torch.float64) < density).double()
    if graded:
        x = x * torch.randint(1, 4, x.shape, generator=g).double()
    table = torch.randn(D, C_in, C_out, generator=g, dtype=torch.float64)
    x1, t1 = x.clone().requires_grad_(), table.clone().requires_grad_()
    x2, t2 = x.clone().requires_grad_(), table.clone().requires_grad_()
    y1 = delayed_sum(x1, t1, strategy=strategy)
    y2 = dense_delayed_sum(x2, t2)
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    gy = torch.randn(y1.shape, generator=g, dtype=torch.float64)
    (y1 * gy).sum().backward()
    (y2 * gy).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(t1.grad, t2.grad, rtol=1e-12, atol=1e-12)


def test_auto_strategy_is_exact_without_gradients_and_spectral_for_hidden_layers_in_training():
    from delaynir.nn.delay_conv import choose_strategy

    anchor = {"T": 100, "B": 64, "C_in": 256, "C_out": 256, "D": 25, "sparse_threshold": 0.15}
    sparse, dense = int(0.08 * 100 * 64 * 256), int(0.5 * 100 * 64 * 256)
    # no gradient (evaluation, deployment checks): the exact direct sums, chosen by input density
    assert choose_strategy(**anchor, n_events=sparse, x_grad=False, table_grad=False) == "events"
    assert choose_strategy(**anchor, n_events=dense, x_grad=False, table_grad=False) == "dense"
    # a hidden layer in training needs the dense input gradient: the spectral form is cheaper
    assert choose_strategy(**anchor, n_events=sparse, x_grad=True, table_grad=True) == "spectral"
    # a short kernel over few steps: T·D is small, the direct sums stay cheaper
    assert (
        choose_strategy(
            T=8, B=4, C_in=6, C_out=5, D=2, n_events=10, sparse_threshold=0.15, x_grad=True, table_grad=True
        )
        != "spectral"
    )


def test_spectral_strategy_is_accurate_in_float32_at_the_anchor_shape():
    """float32 DFT products stay within 1e-5 (relative to the output's scale) of the float64 sum."""
    g = torch.Generator().manual_seed(5)
    x = (torch.rand(100, 8, 64, generator=g) < 0.08).float()
    table = torch.randn(25, 64, 48, generator=g) * 0.1
    x.requires_grad_()
    table.requires_grad_()
    y = delayed_sum(x, table, strategy="spectral")
    gy = torch.randn(y.shape, generator=g)
    gx, gt = torch.autograd.grad((y * gy).sum(), (x, table))
    x64, t64 = x.detach().double().requires_grad_(), table.detach().double().requires_grad_()
    y64 = delayed_sum(x64, t64, strategy="dense")
    gx64, gt64 = torch.autograd.grad((y64 * gy.double()).sum(), (x64, t64))
    for a, b in ((y.detach(), y64.detach()), (gx, gx64), (gt, gt64)):
        assert float((a.double() - b).abs().max()) <= 1e-5 * float(b.abs().max())


@pytest.mark.parametrize("density", [0.05, 0.6])
def test_rounded_layer_equals_shift_and_sum_exactly(density):
    torch.manual_seed(1)
    layer = DelayLinear(7, 5, max_delay=9, bias=False)
    with torch.no_grad():  # dyadic weights: every partial sum is exact, so any summation order agrees
        layer.weight.copy_(torch.randint(-64, 65, layer.weight.shape) / 64.0)
        layer.positions.uniform_(0, 8)
    layer.eval()
    x = (torch.rand(20, 3, 7) < density).float()
    expected = shift_and_sum(x, layer.weight.detach(), layer.integer_delays())
    assert torch.equal(layer(x), expected)


def test_rounding_uses_nearest_integer_and_clamps():
    layer = DelayLinear(2, 1, max_delay=5)
    with torch.no_grad():
        layer.positions.copy_(torch.tensor([[2.4, 2.6]]))
    assert layer.integer_delays().tolist() == [[2, 3]]
    with torch.no_grad():
        layer.positions.copy_(torch.tensor([[-3.0, 7.2]]))
    assert layer.integer_delays().tolist() == [[0, 4]]
    layer.clamp_positions_()
    assert layer.positions.tolist() == [[0.0, 4.0]]


@pytest.mark.parametrize("kernel", ["gaussian", "rounded"])
def test_causal_no_output_depends_on_future_input(kernel):
    torch.manual_seed(2)
    layer = DelayLinear(4, 3, max_delay=6, kernel=kernel)
    x = (torch.rand(15, 2, 4) < 0.3).float()
    y = layer(x)
    x2 = x.clone()
    x2[9:] = 1 - x2[9:]
    y2 = layer(x2)
    assert torch.equal(y[:9], y2[:9])
    assert not torch.equal(y[9:], y2[9:])


def test_gaussian_kernel_is_normalised_and_centred():
    p = torch.tensor([3.0, 7.5])
    g = gaussian_taps(p, 1.0, 12)
    torch.testing.assert_close(g.sum(0), torch.ones(2), rtol=0, atol=1e-6)
    assert int(g[:, 0].argmax()) == 3
    assert g[7, 1] == pytest.approx(g[8, 1].item())
    # narrow σ: the kernel becomes the one-hot of the rounded delay
    assert gaussian_taps(torch.tensor([4.0]), 0.05, 9)[:, 0].tolist() == pytest.approx([0] * 4 + [1] + [0] * 4)


def test_gaussian_table_gradients_match_autograd():
    torch.manual_seed(3)
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    p = (torch.rand(4, 3, dtype=torch.float64) * 9).requires_grad_()
    assert torch.autograd.gradcheck(lambda w, p: _GaussianTable.apply(w, p, 1.7, 10), (w, p))

    def plain(w, p):
        taps = torch.arange(10, dtype=torch.float64).view(-1, 1, 1)
        e = torch.exp(-0.5 * ((taps - p) / 1.7) ** 2)
        return w * e / (e.sum(0) + 1e-7)

    gy = torch.randn(10, 4, 3, dtype=torch.float64)
    fused = torch.autograd.grad((_GaussianTable.apply(w, p, 1.7, 10) * gy).sum(), (w, p))
    ref = torch.autograd.grad((plain(w, p) * gy).sum(), (w, p))
    for a, b in zip(fused, ref):
        torch.testing.assert_close(a, b)


def test_single_synapse_learns_a_target_delay():
    """Gradient descent on the delay position alone moves it to the shift the target demands."""
    torch.manual_seed(0)
    T, D, target_delay = 60, 25, 9
    x = torch.zeros(T, 4, 1)
    for b, t0 in enumerate([3, 11, 20, 28]):
        x[t0, b, 0] = 1.0
    target = torch.zeros_like(x)
    target[target_delay:] = x[: T - target_delay]
    layer = DelayLinear(1, 1, max_delay=D, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.positions.fill_(2.0)
    layer.weight.requires_grad_(False)
    opt = torch.optim.Adam([layer.positions], lr=0.3)
    steps = 200
    for s in range(steps):
        layer.sigma = 6.0 * (0.5 / 6.0) ** min(1.0, s / (0.5 * steps))
        loss = ((layer(x) - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        layer.clamp_positions_()
    assert abs(layer.positions.item() - target_delay) <= 0.5
    layer.eval()
    assert torch.equal(layer(x), target)


def test_ablation_modes():
    torch.manual_seed(4)
    none = DelayLinear(5, 3, max_delay=8, delays="none")
    assert "positions" not in dict(none.named_parameters())
    assert none.integer_delays().eq(0).all()
    x = torch.rand(6, 2, 5)
    torch.testing.assert_close(none(x), x @ none.weight.t() + none.bias)
    fixed = DelayLinear(5, 3, max_delay=8, delays="fixed-random")
    assert "positions" not in dict(fixed.named_parameters())
    d = fixed.integer_delays()
    assert d.min() >= 0 and d.max() <= 7 and len(d.unique()) > 1
    fixed.train()
    assert not fixed.uses_gaussian()  # fixed delays are integers in training too


def test_bad_input_and_config_give_clear_errors():
    layer = DelayLinear(5, 3, max_delay=4)
    with pytest.raises(ShapeError, match=r"\(T, B, 5\)"):
        layer(torch.zeros(4, 5))
    with pytest.raises(ConfigError, match="delays must be one of"):
        DelayLinear(5, 3, max_delay=4, delays="random")
    with pytest.raises(ConfigError, match="max_delay"):
        DelayLinear(5, 3, max_delay=0)
