# Q2: exact constant bias b per step in iaf_psc_delta.
import math, numpy as np, nest
from common import *
h = 1.0; T = 200
beta = 1 - 1/10.05; theta = 1.0; b = 0.137
tau = tau_for(beta, h); assert math.exp(-h/tau) == beta
def ref(b, inp=None, w=None, order="b_first"):
    v = 0.0; z = 0; V = []; Z = []
    for t in range(T):
        if inp is None: I = b
        else:
            I = (b + w*inp[t]) if order == "b_first" else (w*inp[t] + b)
        v = beta * v * (1 - z) + I
        z = 1 if v > theta else 0
        V.append(0.0 if z else v); Z.append(z)  # NEST records V after reset
    return np.array(V), np.array(Z)
# --- measure P30 and identify formula
reset(h)
cms = [1.0, 0.5, 3.3, 250.0]
n = nest.Create("iaf_psc_delta", len(cms), params=dict(E_L=0., V_m=0., V_reset=0., t_ref=0., tau_m=tau, I_e=1.0, V_th=1e300))
n.C_m = cms; nest.Simulate(h)
for cm, p in zip(cms, n.V_m):
    f1 = 1/cm*(1-math.exp(-h/tau))*tau; f2 = -tau/cm*math.expm1(-h/tau)
    print(f"C_m={cm}: measured P30={p!r}  formula '1/C*(1-P33)*tau'={f1==p}  '-tau/C*expm1(-h/tau)'={f2==p}")
def P30(cm): return 1/cm*(1-math.exp(-h/tau))*tau
# C_m search so that P30 == 1 exactly
cm0 = (1-math.exp(-h/tau))*tau; cm = None; c_up = c_dn = cm0
for k in range(200):
    for c in (c_up, c_dn):
        if P30(c) == 1.0: cm = c; break
    if cm: break
    c_up = math.nextafter(c_up, math.inf); c_dn = math.nextafter(c_dn, -math.inf)
print("C_m with P30==1 exactly:", cm, "steps", k)
# I_e search so fl(P30*I_e)==b at C_m=1
p30 = P30(1.0); Ie0 = b/p30; Ie = None; u = d = Ie0
for k in range(200):
    for c in (u, d):
        if p30*c == b: Ie = c; break
    if Ie: break
    u = math.nextafter(u, math.inf); d = math.nextafter(d, -math.inf)
print(f"C_m=1: P30={p30!r}; b/P30 exact? {p30*Ie0==b}; searched I_e={Ie!r} (steps {k})")
# --- run variants
Vr, Zr = ref(b)
variants = {}
reset(h)
base = dict(E_L=0., V_m=0., V_reset=0., t_ref=0., tau_m=tau, V_min=-1e300, V_th=math.nextafter(theta, math.inf), I_e=0.0)
variants["I_e=b, C_m=1"] = nest.Create("iaf_psc_delta", params=base | dict(C_m=1.0, I_e=b))
variants["I_e=b/P30, C_m=1"] = nest.Create("iaf_psc_delta", params=base | dict(C_m=1.0, I_e=Ie0))
variants["I_e=searched, C_m=1"] = nest.Create("iaf_psc_delta", params=base | dict(C_m=1.0, I_e=Ie))
variants["I_e=b, C_m searched (P30==1)"] = nest.Create("iaf_psc_delta", params=base | dict(C_m=cm, I_e=b))
sg = nest.Create("spike_generator", params=dict(spike_times=[float(t) for t in range(1, T+1)]))
nsg = nest.Create("iaf_psc_delta", params=base | dict(C_m=1.0))
nest.Connect(sg, nsg, syn_spec=dict(weight=b, delay=h)); variants["spike_generator every step, w=b, d=1"] = nsg
scg = nest.Create("step_current_generator", params=dict(amplitude_times=[h], amplitude_values=[b]))
nsc = nest.Create("iaf_psc_delta", params=base | dict(C_m=cm))
nest.Connect(scg, nsc); variants["step_current_generator amp=b, C_m searched"] = nsc
mm = nest.Create("multimeter", params=dict(record_from=["V_m"], interval=h))
allN = sum(list(variants.values())[1:], list(variants.values())[0])
nest.Connect(mm, allN)
nest.Simulate(T + 5.0)
ev = mm.events
for name, nd in variants.items():
    m = ev["senders"] == nd.global_id; t = ev["times"][m]; V = ev["V_m"][m]
    # align by best shift (report it): NEST time stamp t (ms) vs reference step index
    best = None
    for sh in range(0, 4):
        VV = V[sh:sh+T]
        if len(VV) == T:
            nexact = int((VV == Vr).sum()); err = float(np.abs(VV - Vr).max())
            if best is None or nexact > best[1]: best = (sh, nexact, err, t[sh])
    print(f"{name:45s} best alignment: ref step 0 == NEST record time {best[3]} ms; bit-exact V {best[1]}/{T}; max|dV|={best[2]:.3g}")
print("ref spikes:", int(Zr.sum()))
