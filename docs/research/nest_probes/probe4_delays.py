# Q4 (+Q3, Q5): 2-layer net input->hidden LIF->output LIF (+ li readout), random integer delays 0..5, vs float64 reference.
import sys, math, numpy as np, nest
from common import reset
from netlib import reference, run_nest
h = 1.0; T = 100
def make(seed, reset_mode, quant=False, rec=False):
    rng = np.random.default_rng(seed)
    nin, nh, no, nr = 20, 30, 10, 5
    beta_h = 1 - 1/10.05 if not quant else 0.875
    beta_o = 0.9 if not quant else 0.75
    def W(a, b, scale):
        w = rng.normal(0, scale, (a, b))
        return np.round(w * 16) / 16 if quant else w
    layers = [dict(name="in", n=nin, kind="input"),
              dict(name="hid", n=nh, kind="lif", beta=beta_h, theta=1.0, bias=(0.0625 if quant else 0.05), reset=reset_mode),
              dict(name="out", n=no, kind="lif", beta=beta_o, theta=1.0, bias=(-0.0625 if quant else -0.02), reset=reset_mode),
              dict(name="ro", n=nr, kind="li", beta=0.95, theta=0.0, bias=0.01, reset="hard")]
    m = lambda a, b, p: rng.random((a, b)) < p
    edges = [("in", "hid", W(nin, nh, 0.6), rng.integers(0, 6, (nin, nh)), m(nin, nh, 0.5)),
             ("hid", "out", W(nh, no, 0.5), rng.integers(0, 6, (nh, no)), m(nh, no, 0.6)),
             ("out", "ro", W(no, nr, 0.3), rng.integers(0, 6, (no, nr)), m(no, nr, 0.8))]
    if rec: edges.append(("hid", "hid", W(nh, nh, 0.2), rng.integers(1, 6, (nh, nh)), m(nh, nh, 0.2)))
    inputs = (rng.random((T, nin)) < 0.15).astype(int)
    return layers, edges, inputs
for reset_mode in ["hard", "subtract"]:
  for quant in [False, True]:
    for th_mode in ["strict", "ge"]:
      for rec in [False, True]:
        res = []
        for seed in range(3):
            layers, edges, inputs = make(seed, reset_mode, quant, rec)
            Vr, Zr = reference(layers, edges, inputs, T)
            reset(h); Vn, Zn, depth = run_nest(layers, edges, inputs, T, h, th_mode=th_mode)
            out = []
            for nm in ["hid", "out", "ro"]:
                vref = Vr[nm].copy()
                if nm != "ro" and reset_mode == "hard": vref[Zr[nm] == 1] = 0.0   # NEST records V after hard reset
                if nm != "ro" and reset_mode == "subtract": vref = vref - layers[[l["name"] for l in layers].index(nm)]["_nest_vth"] * Zr[nm]  # eprop_iaf records V after subtraction
                zmis = int((Zr[nm] != Zn[nm]).sum()) if nm != "ro" else 0
                nsp = int(Zr[nm].sum()) if nm != "ro" else 0
                exact = float((Vn[nm] == vref).mean()); err = float(np.nanmax(np.abs(Vn[nm] - vref)))
                # ties: reference v exactly == theta
                ties = int((Vr[nm] == 1.0).sum()) if nm != "ro" else 0
                out.append(f"{nm}: spikes {nsp} mism {zmis} ties {ties} Vexact {exact*100:.1f}% max|dV| {err:.2g}")
            res.append(f"  seed {seed}: " + "; ".join(out))
        print(f"reset={reset_mode} quantised={quant} V_th={'nextafter(theta)' if th_mode=='strict' else 'theta'} recurrent={rec} depth={depth}")
        print("\n".join(res))
