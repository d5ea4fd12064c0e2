"""LIF and leaky-integrator recurrences: exact forward semantics and BPTT gradients."""

import math

import pytest
import torch

from delaynir.errors import ConfigError
from delaynir.nn.neurons import beta_from_tau, li_sequence, lif_sequence


class _Spike(torch.autograd.Function):
    """Heaviside(v − θ > 0) with the ATan surrogate, for the autograd reference below."""

    @staticmethod
    def forward(ctx, u, alpha):
        ctx.save_for_backward(u)
        ctx.alpha = alpha
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        a = ctx.alpha
        return g * (a / 2) / (1 + (math.pi / 2 * a * u) ** 2), None


def reference_lif(current, beta, theta, reset, alpha=5.0):
    """The equations of docs/design.md step by step, differentiated by autograd (reset detached)."""
    v = torch.zeros_like(current[0])
    z = torch.zeros_like(current[0])
    spikes, mems = [], []
    for t in range(current.shape[0]):
        if reset == "hard":
            v = beta * v * (1 - z.detach()) + current[t]
        else:
            v = beta * v - theta * z.detach() + current[t]
        z = _Spike.apply(v - theta, alpha)
        spikes.append(z)
        mems.append(v)
    return torch.stack(spikes), torch.stack(mems)


@pytest.mark.parametrize("uses", ["spikes", "membranes", "both"])
@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_lif_forward_and_gradient_match_the_equations(reset, uses):
    """Also when the loss reads only one of the two outputs (the other's gradient is then None)."""
    torch.manual_seed(0)
    current = torch.randn(40, 3, 6, dtype=torch.float64) * 0.8 + 0.3
    beta = torch.rand(6, dtype=torch.float64) * 0.5 + 0.45
    theta = torch.rand(6, dtype=torch.float64) + 0.5
    c1, c2 = current.clone().requires_grad_(), current.clone().requires_grad_()
    z1, v1 = lif_sequence(c1, beta, theta, reset=reset)
    z2, v2 = reference_lif(c2, beta, theta, reset)
    assert torch.equal(z1, z2)
    torch.testing.assert_close(v1, v2, rtol=1e-13, atol=1e-13)
    assert 0 < z1.mean() < 1  # the test exercises both spiking and silent steps
    gz, gv = torch.randn_like(z1), torch.randn_like(v1)

    def loss(z, v):
        return {"spikes": (z * gz).sum(), "membranes": (v * gv).sum(), "both": (z * gz).sum() + (v * gv).sum()}[uses]

    loss(z1, v1).backward()
    loss(z2, v2).backward()
    torch.testing.assert_close(c1.grad, c2.grad, rtol=1e-12, atol=1e-12)


def test_threshold_is_strict_and_hard_reset_zeroes_the_next_step():
    current = torch.tensor([1.0, 0.5, 0.0]).view(3, 1, 1)
    z, v = lif_sequence(current, torch.tensor([0.5]), torch.tensor([1.0]), reset="hard")
    assert z.flatten().tolist() == [0.0, 0.0, 0.0]  # v = 1.0 equals θ: no spike (strict >)
    current = torch.tensor([1.5, 0.25, 0.0]).view(3, 1, 1)
    z, v = lif_sequence(current, torch.tensor([0.5]), torch.tensor([1.0]), reset="hard")
    assert z.flatten().tolist() == [1.0, 0.0, 0.0]
    assert v.flatten().tolist() == [1.5, 0.25, 0.125]  # reset: v[1] = 0.5·1.5·0 + 0.25
    z, v = lif_sequence(current, torch.tensor([0.5]), torch.tensor([1.0]), reset="subtract")
    assert v.flatten().tolist() == [1.5, 0.5 * 1.5 - 1.0 + 0.25, 0.5 * 0.0]


def test_leaky_integrator_value_and_gradient():
    torch.manual_seed(1)
    current = torch.randn(25, 2, 3, dtype=torch.float64, requires_grad=True)
    beta = torch.tensor([0.9, 0.5, 0.0], dtype=torch.float64)
    out = li_sequence(current, beta)
    ref, v = [], torch.zeros(2, 3, dtype=torch.float64)
    for t in range(25):
        v = beta * v + current[t]
        ref.append(v)
    ref = torch.stack(ref)
    torch.testing.assert_close(out, ref)
    g = torch.randn_like(out)
    ga = torch.autograd.grad((out * g).sum(), current)[0]
    gb = torch.autograd.grad((ref * g).sum(), current)[0]
    torch.testing.assert_close(ga, gb)


def test_parameters_are_validated():
    assert beta_from_tau(10.0) == pytest.approx(0.9)
    with pytest.raises(ConfigError, match="time constant"):
        beta_from_tau(1.0)
    with pytest.raises(ConfigError, match="reset"):
        lif_sequence(torch.zeros(2, 1, 1), 0.9, 1.0, reset="soft")


@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_compiled_cpu_loops_equal_the_torch_loops(reset, monkeypatch):
    """The numba loops (CPU) and the torch loops (other devices) run the same float32 arithmetic."""
    from delaynir.nn import neuron_kernels

    g = torch.Generator().manual_seed(4)
    current = (torch.randn(30, 4, 300, generator=g) * 0.7 + 0.35).requires_grad_()
    beta = torch.rand(300, generator=g) * 0.5 + 0.45
    theta = torch.rand(300, generator=g) + 0.5
    gz, gv, gl = (torch.randn(30, 4, 300, generator=g) for _ in range(3))

    def run():
        z, v = lif_sequence(current, beta, theta, reset=reset)
        out = li_sequence(current, beta)
        grads = torch.autograd.grad((z * gz).sum() + (v * gv).sum() + (out * gl).sum(), current)[0]
        return z, v, out, grads

    compiled = run()
    monkeypatch.setattr(neuron_kernels, "applicable", lambda *tensors: False)
    looped = run()
    assert 0 < float(compiled[0].detach().mean()) < 1
    for a, b in zip(compiled[:3], looped[:3]):
        assert torch.equal(a, b)  # spikes, membranes, integrator: bit for bit
    torch.testing.assert_close(compiled[3], looped[3], rtol=1e-5, atol=1e-6)


_TRITON_CHECK = """
import torch
from delaynir.nn import neuron_kernels as cpu, neuron_kernels_triton as gpu
g = torch.Generator().manual_seed(5)
for dtype in (torch.float64, torch.float32):
    for hard in (True, False):
        cur = torch.randn(25, 2, 70, generator=g, dtype=dtype) * 0.7 + 0.3  # 140 neurons: two programs
        beta = torch.rand(70, generator=g, dtype=dtype) * 0.5 + 0.45
        theta = torch.rand(70, generator=g, dtype=dtype) + 0.5
        z, v = cpu.lif_forward(cur, beta, theta, hard)
        zt, vt = gpu.lif_forward(cur, beta, theta, hard)
        assert 0 < float(z.mean()) < 1 and torch.equal(z, zt) and torch.equal(v, vt), (dtype, hard)
        gz, gm = torch.randn_like(cur), torch.randn_like(cur)
        for mem in (None, gm):
            torch.testing.assert_close(gpu.lif_backward(gz, mem, v, z, beta, theta, hard, 5.0),
                                       cpu.lif_backward(gz, mem, v, z, beta, theta, hard, 5.0),
                                       rtol=1e-12 if dtype == torch.float64 else 1e-5, atol=1e-6)
        for reverse in (False, True):
            assert torch.equal(gpu.li_scan(cur, beta, reverse=reverse), cpu.li_scan(cur, beta, reverse=reverse))
print("ok")
"""


def test_triton_gpu_loops_equal_the_compiled_cpu_loops():
    """The CUDA kernels, run on the CPU by Triton's interpreter (no FMA there), compute the numba loops' numbers."""
    pytest.importorskip("triton")
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="1")  # read when the kernels are decorated: a fresh process
    done = subprocess.run([sys.executable, "-c", _TRITON_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_the_triton_kernels_are_chosen_for_cuda_tensors_only():
    from delaynir.nn import neuron_kernels, neuron_kernels_triton

    cpu = torch.zeros(2, 1, 3)
    assert neuron_kernels.applicable(cpu) and not neuron_kernels_triton.applicable(cpu)
    assert not neuron_kernels.applicable(cpu.to(torch.bfloat16))
