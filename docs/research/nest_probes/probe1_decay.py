# Q1: is NEST's P33 = exp(-h/tau_m) exactly beta for tau_m = -h/ln(beta)? can a nextafter search fix it?
import math, numpy as np, nest
from common import *
betas = {"1-1/10.05": 1 - 1/10.05, "0.9": 0.9, "0.95": 0.95, "0.99":0.99, "0.5":0.5}
for k in range(1, 13): betas[f"1-2^-{k}"] = 1 - 2.0**-k
for k in [1, 3, 7, 41, 100, 205, 409, 1000, 2047, 3000, 4095]: betas[f"1-{k}/4096"] = 1 - k/4096
rng = np.random.default_rng(0)
for i, b in enumerate(rng.uniform(0.3, 0.9999, 20)): betas[f"rand{i}"] = float(b)
for model in ["iaf_psc_delta", "eprop_iaf"]:
  for h in [1.0, 0.1]:
    reset(h)
    names = list(betas)
    taus_naive = [tau_for(betas[n], h) for n in names]
    searched = [search_tau(betas[n], h) for n in names]
    taus_s = [s[0] if s[0] is not None else taus_naive[i] for i, s in enumerate(searched)]
    N = len(names)
    a = nest.Create(model, N, params={"E_L": 0.0, "V_m": 1.0, "V_th": 1e300, "t_ref": 0.0, "C_m": 1.0, "I_e": 0.0} | ({"V_reset": 0.0} if model=="iaf_psc_delta" else {}))
    b = nest.Create(model, N, params={"E_L": 0.0, "V_m": 1.0, "V_th": 1e300, "t_ref": 0.0, "C_m": 1.0, "I_e": 0.0} | ({"V_reset": 0.0} if model=="iaf_psc_delta" else {}))
    a.tau_m = taus_naive; b.tau_m = taus_s
    nest.Simulate(h)   # one step: V = P33 * 1.0
    Pa = np.array(a.V_m); Pb = np.array(b.V_m)
    nfail = 0; nfix = 0
    print(f"\n== model={model} h={h}")
    for i, n in enumerate(names):
        beta = betas[n]; ok_naive = Pa[i] == beta; ok_s = Pb[i] == beta
        py_naive = math.exp(-h / taus_naive[i])
        if not ok_naive: nfail += 1
        if not ok_naive and ok_s: nfix += 1
        if (not ok_naive) or n.startswith(("1-1/10","0.9","0.95","1-2^-1 ","1-1/4096")):
            print(f"{n:12s} beta={beta!r:24} naive_exact={ok_naive} (ulps off {int(np.int64(np.float64(Pa[i]).view(np.int64)-np.float64(beta).view(np.int64)))}) "
                  f"searched_steps={searched[i][1]} searched_exact={ok_s} python_exp_matches_nest={py_naive==Pa[i]}")
    print(f"SUMMARY model={model} h={h}: {N} betas, naive exact {N-nfail}, naive fail {nfail}, fixed by search {nfix}, still failing {nfail-nfix}")
