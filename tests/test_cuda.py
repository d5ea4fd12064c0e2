"""The CUDA path computes what the CPU path computes (run where CUDA is available, skipped elsewhere).

CI has no GPU; these run on a lent GPU machine (see the closing notes) and on users' machines.
The CPU results they compare against are themselves tested against tap-by-tap references.
"""

import pytest
import torch

from delaynir.nn import delayed_sum
from delaynir.nn.neurons import li_sequence, lif_sequence

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("strategy", ["events", "dense", "spectral"])
def test_delayed_sum_on_cuda_matches_cpu_in_value_and_gradients(strategy):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 4, 9, generator=g, dtype=torch.float64) < 0.2).double()
    table = torch.randn(7, 9, 5, generator=g, dtype=torch.float64)
    gy = torch.randn(30, 4, 5, generator=g, dtype=torch.float64)
    results = []
    for device in ("cpu", CUDA):
        xd, td = x.to(device).requires_grad_(), table.to(device).requires_grad_()
        y = delayed_sum(xd, td, strategy=strategy)
        (y * gy.to(device)).sum().backward()
        results.append((y.cpu(), xd.grad.cpu(), td.grad.cpu()))
    for cpu, cuda in zip(*results):
        torch.testing.assert_close(cuda, cpu, rtol=1e-10, atol=1e-10)


def test_spectral_sum_stays_float32_under_bfloat16_autocast():
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(100, 8, 64, generator=g) < 0.1).float().to(CUDA)
    table = (torch.randn(25, 64, 32, generator=g) * 0.1).to(CUDA)
    exact = delayed_sum(x.double(), table.double(), strategy="dense")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = delayed_sum(x.requires_grad_(), table.requires_grad_(), strategy="spectral")
    assert y.dtype == torch.float32
    assert float((y.double() - exact).abs().max()) <= 1e-4 * float(exact.abs().max())


@pytest.mark.parametrize("reset", ["hard", "subtract"])
def test_neuron_recurrences_on_cuda_match_the_compiled_cpu_loops(reset):
    g = torch.Generator().manual_seed(2)
    current = torch.randn(50, 3, 17, generator=g, dtype=torch.float64) * 0.6
    beta, theta = torch.full((17,), 0.9, dtype=torch.float64), torch.linspace(0.5, 1.5, 17, dtype=torch.float64)
    gz = torch.randn(50, 3, 17, generator=g, dtype=torch.float64)
    outs = []
    for device in ("cpu", CUDA):
        c = current.to(device).requires_grad_()
        z, v = lif_sequence(c, beta.to(device), theta.to(device), reset=reset)
        r = li_sequence(c, beta.to(device))
        ((z * gz.to(device)).sum() + (r * gz.to(device)).sum()).backward()
        outs.append((z.cpu(), v.cpu(), r.cpu(), c.grad.cpu()))
    assert int(outs[0][0].sum()) > 0
    for cpu, cuda in zip(*outs):
        torch.testing.assert_close(cuda, cpu, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(
    "settings", [{}, {"sparsity": 0.875, "prune": "deepr-rigl", "structure": "taps"}], ids=["dense", "pruned-taps"]
)
def test_model_training_step_on_cuda_matches_cpu(settings):
    from delaynir.nn.model import readout_loss
    from delaynir.train.config import make_config
    from delaynir.train.loop import build_model

    config = make_config({"hidden": [32, 24], "max_delay": 9, "dropout": 0.0, **settings})
    torch.manual_seed(0)
    cpu_model = build_model(config, 20, 4).double().train()
    cuda_model = build_model(config, 20, 4).double().train()
    cuda_model.load_state_dict(cpu_model.state_dict())
    cuda_model.to(CUDA)
    g = torch.Generator().manual_seed(3)
    x = (torch.rand(40, 6, 20, generator=g) < 0.2).double()
    y = torch.randint(0, 4, (6,), generator=g)
    for model, device in ((cpu_model, "cpu"), (cuda_model, CUDA)):
        model.set_sigma(2.0)
        readout_loss(model(x.to(device)), y.to(device)).backward()
    torch.testing.assert_close(cuda_model(x.to(CUDA)).detach().cpu(), cpu_model(x).detach(), rtol=1e-8, atol=1e-8)
    for (name, p_cpu), p_cuda in zip(cpu_model.named_parameters(), cuda_model.parameters()):
        if p_cpu.grad is not None:
            torch.testing.assert_close(p_cuda.grad.cpu(), p_cpu.grad, rtol=1e-6, atol=1e-8, msg=name)


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bf16-autocast"])
def test_train_on_cuda_gives_a_run_that_evaluates_and_compiles_on_cpu(tmp_path, tiny_data, amp):
    from delaynir.cli import main

    run, config = tmp_path / "run", tmp_path / "amp.toml"
    config.write_text(f"amp = {str(amp).lower()}\n")
    args = [
        "train",
        "--data",
        str(tiny_data),
        "--out",
        str(run),
        "--device",
        "cuda",
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--hidden",
        "16",
        "12",
        "--max-delay",
        "8",
        "--config",
        str(config),
    ]
    assert main(args) == 0
    assert main(["evaluate", str(run), "--data", str(tiny_data), "--device", "cpu", "--json"]) == 0
    assert main(["compile", str(run), "--target", "int8", "--out", str(tmp_path / "m.h5")]) == 0
