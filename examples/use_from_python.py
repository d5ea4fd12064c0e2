"""delaynir from Python: build a delay SNN, train it in your own loop, compile it for a target, export and verify.

    python examples/use_from_python.py [OUT_DIR]

Everything here is the public API (``import delaynir``); copy it and put your own data, model and loop in.
Takes about a minute on 2 CPU cores.
"""

import sys
from pathlib import Path

import torch

import delaynir
from delaynir.data import SpikeDataset, SynthConfig, generate_synthetic, make_loader

out = Path(sys.argv[1] if len(sys.argv) > 1 else "use-from-python-out")
torch.manual_seed(0)

# 1. Data: any SHD-layout file; here a small generated timing task (which channel fires before which).
train_file, test_file = generate_synthetic(
    out / "data",
    SynthConfig(n_channels=12, n_classes=3, n_train=96, n_test=48, duration=0.4, spread=20, n_groups=3, seed=1),
    overwrite=True,
)
dt, n_steps = 0.01, 40
train_set = SpikeDataset(train_file, dt=dt, n_steps=n_steps)
test_set = SpikeDataset(test_file, dt=dt, n_steps=n_steps)
train_loader = make_loader(train_set, range(len(train_set)), batch_size=16, shuffle=True)
test_loader = make_loader(test_set, range(len(test_set)), batch_size=48, shuffle=False)

# 2. A delay SNN: synapses with learnable delays of 0 … max_delay − 1 steps (Gaussian kernels while training).
model = delaynir.DelaySNN(
    delaynir.ModelConfig(n_inputs=12, n_outputs=3, hidden=[24], max_delay=12, threshold=0.5, dropout=0.0)
)

# 3. Your own training loop: x is time-first (T, B, channels), the model returns the readout membranes.
optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
for epoch in range(20):
    model.train()
    model.set_sigma(max(0.5, 3.0 * (1 - epoch / 5)))  # anneal the delay kernels towards integer delays
    for x, y in train_loader:
        optimizer.zero_grad()
        loss = delaynir.readout_loss(model(x), y)
        loss.backward()
        optimizer.step()
        model.clamp_positions_()
model.eval()  # evaluated and deployed, each delay is its rounded position

# 4. Compile for a target: quantised weights, integer delays, sparse synapses; the report says what changed.
graph, report = delaynir.compile_model(model, delaynir.load_target("int8"), dt=dt)
print(f"compiled: {report.neurons} neurons, {report.synapses} synapses, delays up to {report.max_delay} steps")
delaynir.save_graph(graph, out / "model.delaygraph.h5", overwrite=True)

# 5. Export: NIR and ONNX (and every installed target package's formats: delaynir export --format).
for fmt, name in (("nir", "model.nir"), ("onnx", "model.onnx")):
    delaynir.export_graph(graph, out / name, fmt, overwrite=True)

# 6. Verify: the reference simulator defines what the graph computes; norse, snnTorch and ONNX Runtime run the
#    exported files and must agree spike for spike. The trained model is compared too.
result = delaynir.verify(graph, test_loader, sims=["norse", "snntorch", "onnxruntime"], model=model)
print(f"reference simulator accuracy {result['reference_accuracy']:.3f}")
for sim, r in result["simulators"].items():
    print(f"{sim:>12}: same prediction {r['prediction_agreement']:.2%}, identical spikes {r['spike_agreement']}")
