"""A visual report of what a run learned: one self-contained HTML page plus its PNGs.

The run's best model is compiled in memory for the float target (rounded delays, BatchNorm
folded: the trained model's deployed form) and run in the reference simulator on the test
file. The page shows training curves, spike rasters, learned delays per layer, weight vs
delay, the spatio-temporal structure of the first layer with a clustering measure, the
confusion matrix, a verification table (norse, snnTorch, ONNX Runtime and the trained model
against the reference simulator) and the hardware fit against a target profile.
"""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from delaynir import plugins
from delaynir.common import outputs
from delaynir.errors import DataFormatError
from delaynir.handoff.report_plots import NEIGHBOURHOOD, PIXELS
from delaynir.reference.simulate import simulate

log = logging.getLogger(__name__)

FALLBACK_TARGET = "int8"  #: the fit table's profile when no chip target is installed

RASTER_SAMPLES = 3
VERIFY_SAMPLES = 8
#: Limits the compiler satisfies by quantising (weights, decays); the fit table checks the rest on the float graph.
QUANTISED_LIMITS = ("weight_bits", "weight_step", "weight_scale", "decay")


def hardware_fit(graph, profile) -> dict[str, Any]:
    """Neurons, fan-in, delays, inputs and outputs used vs ``profile``'s limits, and what does not fit."""
    from delaynir.hardware.fit import check_fit

    fan_in = max(
        (
            int(np.bincount(np.concatenate([p.post for p in la.projections]), minlength=la.size).max())
            for la in graph.layers
            if la.n_synapses
        ),
        default=0,
    )

    def limit(value):
        return None if value == float("inf") else value

    rows = [
        ("neurons", graph.n_neurons, limit(profile.max_neurons)),
        ("neurons in the largest layer", max(la.size for la in graph.layers), limit(profile.max_neurons_per_layer)),
        ("synapses", graph.n_synapses, None),
        ("largest fan-in", fan_in, limit(profile.max_fan_in)),
        ("longest delay (steps)", graph.max_delay, limit(profile.max_delay)),
        ("inputs", graph.n_inputs, limit(profile.max_inputs)),
        ("outputs", graph.n_outputs, limit(profile.max_outputs)),
    ]
    violations = [v.to_dict() for v in check_fit(graph, profile) if v.limit not in QUANTISED_LIMITS]
    return {
        "target": profile.name,
        "rows": [{"quantity": q, "used": u, "limit": lim} for q, u, lim in rows],
        "violations": violations,
        "fits": not violations,
    }


def write_report(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    target: str | None = None,
    data: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Write ``report.html`` and its PNGs to ``out`` (default RUN_DIR/report); return paths and figures.

    The directory is built beside ``out`` and renamed into place: an interrupted report leaves
    nothing, and an existing ``out`` is replaced only with ``overwrite``.
    """
    from delaynir.compile.compiler import compile_in_memory
    from delaynir.handoff import report_plots as plots
    from delaynir.handoff.graph_data import graph_loader
    from delaynir.handoff.verify import verify
    from delaynir.hardware.profile import load_target
    from delaynir.train.run_dir import Run

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "report"
    profile = load_target(target or plugins.default_chip() or FALLBACK_TARGET)  # fail early on an unknown target
    run = Run(run_dir)
    model = run.model
    graph, _ = compile_in_memory(run, load_target("float"))
    test_file = run.test_file(data)
    loader, _ = graph_loader(graph, test_file, batch_size=256)
    n_classes = max(graph.n_outputs, run.data_info["n_classes"])
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    first = None
    for x, y in tqdm(loader, desc="report", unit="batch", disable=not progress):
        result = simulate(graph, x, record=True)
        np.add.at(confusion, (y.numpy(), result.predictions.numpy()), 1)
        if first is None:
            first = (x, y, result)
    if first is None:
        raise DataFormatError(f"{test_file} holds no samples; the report needs at least one")
    x, y, result = first
    hidden = [la.name for la in graph.layers if not la.kind.readout]
    k = min(VERIFY_SAMPLES, x.shape[1])
    verification = verify(graph, [(x[:, :k], y[:k])], model=model)
    grid = plots.synapse_grid(graph)
    cluster = plots.clustering(grid)
    fit = hardware_fit(graph, profile)

    r = min(RASTER_SAMPLES, x.shape[1])
    with outputs.atomic_dir(out, overwrite=overwrite) as tmp:
        images = {
            "training": plots.training_curves(run.metrics, tmp / "training.png"),
            "rasters": plots.spike_rasters(
                x[:, :r],
                {n: result.spikes[n][:, :r] for n in hidden},
                y[:r],
                result.predictions[:r],
                tmp / "rasters.png",
                graded=graph.input.graded,
            ),
            "delays": plots.delay_histograms(graph, tmp / "delays.png"),
            "weight_delay": plots.weight_vs_delay(graph, tmp / "weight_delay.png"),
            "structure": plots.structure_plot(graph, tmp / "structure.png"),
            "confusion": plots.confusion_plot(confusion, tmp / "confusion.png"),
        }
        accuracy = float(np.trace(confusion) / max(confusion.sum(), 1))
        report = {
            "run_dir": str(run_dir),
            "data": str(test_file),
            "n_test": int(confusion.sum()),
            "test_accuracy": accuracy,
            "confusion": confusion.tolist(),
            "clustering": cluster,
            "verification": verification,
            "hardware_fit": fit,
            "out": str(out),
            "images": {name: str(out / p.name) for name, p in images.items()},
            "image_size": list(PIXELS),
            "sizes": {"neurons": graph.n_neurons, "synapses": graph.n_synapses, "max_delay": graph.max_delay},
            "input_encoding": graph.encoding,
        }
        (tmp / "report.html").write_text(render_html(report, images))
    html_path = out / "report.html"
    report["html"] = str(html_path)
    log.info("wrote report %s (%d figures)", html_path, len(images))
    return report


# ----------------------------------------------------------------------------- HTML

CSS = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #ddd}
.bad{color:#b00}.good{color:#070}"""

#: Sets data-images-loaded on <body> once every image has decoded (read by the headless-browser test).
SCRIPT = """window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  document.body.setAttribute('data-images', String(imgs.length));
  document.body.setAttribute('data-images-loaded', String(imgs.length > 0 && imgs.every(function (i) {
    return i.complete && i.naturalWidth > 0; })));
});"""


def _table(id_: str, header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{id_}"><tr>{head}</tr>{body}</table>'


def _img(name: str, path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img id="img-{name}" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _pct(v: float) -> str:
    return f"{v:.2%}"


def render_html(report: dict[str, Any], images: dict[str, Path]) -> str:
    """The report page; every image embedded as a base64 data URI."""
    e = html.escape
    v = report["verification"]
    ver_rows = [
        [
            e(name),
            f"{r['accuracy']:.4f}",
            _pct(r["prediction_agreement"]),
            e(", ".join(f"{k} {_pct(x)}" for k, x in r["spike_agreement"].items())),
            "–"
            if not r["first_divergence"]
            else e("layer {layer}, sample {sample}, neuron {neuron}, step {step}".format(**r["first_divergence"])),
        ]
        for name, r in v["simulators"].items()
    ]
    fit = report["hardware_fit"]
    fit_rows = [
        [
            e(r["quantity"]),
            r["used"],
            "no limit" if r["limit"] is None else r["limit"],
            "✓" if r["limit"] is None or r["used"] <= r["limit"] else '<span class="bad">✗</span>',
        ]
        for r in fit["rows"]
    ]
    violations = "".join(f"<li>{e(x['message'])}</li>" for x in fit["violations"])
    c = report["clustering"]
    dc, dd = NEIGHBOURHOOD
    s = report["sizes"]
    input_note = (
        " (the graded input drawn as an image of its values, channel by step)"
        if report.get("input_encoding") == "graded"
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>delaynir report: {e(report["run_dir"])}</title>
<style>{CSS}</style><script>{SCRIPT}</script></head>
<body>
<h1>What the network learned</h1>
<p>Run <code>{e(report["run_dir"])}</code>, test file <code>{e(report["data"])}</code>.
The run's best model with rounded delays (compiled for the float target: {s["neurons"]} neurons,
{s["synapses"]} synapses, delays up to {s["max_delay"]} steps) in the reference simulator:
test accuracy <b>{report["test_accuracy"]:.4f}</b> on {report["n_test"]} samples.</p>

<h2>Training curves</h2>
{_img("training", images["training"], "training curves")}

<h2>Spike rasters</h2>
<p>Input and hidden-layer spikes of the first {RASTER_SAMPLES} test samples{input_note}.</p>
{_img("rasters", images["rasters"], "spike rasters")}

<h2>Learned delays</h2>
{_img("delays", images["delays"], "delay histograms")}
{_img("weight_delay", images["weight_delay"], "weight vs delay")}

<h2>Spatio-temporal structure</h2>
<p>For each neuron of the first hidden layer, its incoming weights are placed by input channel offset
(relative to the neuron's receptive-field centre, the |w|-weighted mean input channel, rounded) and
delay; the map is the mean over neurons. Red is excitation, blue inhibition (colours centred at 0).</p>
{_img("structure", images["structure"], "spatio-temporal structure")}
<p><b>Clustering of excitation and inhibition.</b> Per neuron, over its (input channel, delay) grid of
weights: the share of total |w| whose neighbourhood (±{dc} channel, ±{dd} steps, the synapse itself
excluded) sums to the same sign as the synapse, among synapses with any neighbour; averaged over
neurons weighted by their |w|. The baseline shuffles the signs among each neuron's synapses (same
positions and magnitudes). 0.5 or the baseline means no clustering; higher means excitation and
inhibition form same-sign clusters in channel and delay.</p>
{
        _table(
            "clustering",
            ["measure", "value"],
            [
                ["same-sign |w| share", f"{c['same_sign_fraction']:.3f}"],
                ["sign-shuffled baseline", f"{c['shuffled_baseline']:.3f} ± {c['shuffled_std']:.3f}"],
                ["excess over baseline", f"{c['excess']:+.3f}"],
            ],
        )
    }

<h2>Confusion matrix</h2>
{_img("confusion", images["confusion"], "confusion matrix")}

<h2>Verification</h2>
<p>The first {v["n"]} test samples; each simulator runs the exported file (NIR for norse and snnTorch,
ONNX for ONNX Runtime) and is compared with the reference simulator (reference accuracy
{v["reference_accuracy"]:.4f}); "trained" is the PyTorch model in eval mode.</p>
{_table("verification", ["simulator", "accuracy", "same prediction", "identical spikes", "first divergence"], ver_rows)}

<h2>Hardware fit: {e(fit["target"])}</h2>
<p>{"Fits" if fit["fits"] else '<span class="bad">Does not fit</span>'} (weights and decays are
quantised by <code>delaynir compile</code> and not checked here).</p>
{_table("fit", ["quantity", "used", "limit", "fits"], fit_rows)}
{f'<ul class="bad">{violations}</ul>' if violations else ""}
</body></html>
"""
