# Q3: eprop_iaf (Bellec e-prop LIF) as subtractive-reset LIF: single-neuron check.
import math, numpy as np, nest
from common import *
h = 1.0; T = 60; beta = 0.9; theta = 1.0
reset(h)
rng = np.random.default_rng(0); inp = (rng.random(T) < 0.5).astype(int); w = 0.4; b = 0.05
n = nest.Create("eprop_iaf", params=dict(C_m=1.0, E_L=0.0, V_m=0.0, V_th=theta, t_ref=0.0, tau_m=tau_for(beta, h), V_min=-1e300, I_e=0.0))
print({k: n.get(k) for k in ["V_th", "tau_m", "t_ref", "E_L", "C_m", "V_m"]})
sg = nest.Create("spike_generator", params=dict(spike_times=[float(t+1) for t in np.nonzero(inp)[0]]))
bg = nest.Create("spike_generator", params=dict(spike_times=[float(t+1) for t in range(T)]))
nest.Connect(sg, n, syn_spec=dict(weight=w, delay=h)); nest.Connect(bg, n, syn_spec=dict(weight=b, delay=h))
mm = nest.Create("multimeter", params=dict(record_from=["V_m"], interval=h)); nest.Connect(mm, n)
sr = nest.Create("spike_recorder"); nest.Connect(n, sr)
nest.Simulate(T + 3.0)
v = 0.; z = 0; Vr = []; Zr = []
for t in range(T):
    v = beta*v - theta*z + (b + w*inp[t]); z = int(v > theta); Vr.append(v); Zr.append(z)
ev = mm.events; print("NEST times", ev["times"][:5])
Vn = ev["V_m"][1:T+1]; st = sr.events["times"]
print("ref spikes steps :", list(np.nonzero(Zr)[0]))
print("NEST spike steps :", list((st - 2).astype(int)))
for t in range(12): print(t, inp[t], Vr[t], Vn[t])
