# Q2b: how often is I_e=b/P30 exact; how often can C_m be searched so P30==1 (then I_e=b is exact for every b)?
# P30 formula confirmed in probe2 against NEST: P30 = 1/C_m*(1-exp(-h/tau))*tau
import math, numpy as np
from common import tau_for
h = 1.0; rng = np.random.default_rng(0)
def P30(cm, tau): return 1/cm*(1-math.exp(-h/tau))*tau
def cm_search(tau, W=1000):
    c0 = (1-math.exp(-h/tau))*tau; u = d = c0
    for k in range(W):
        for c in (u, d):
            if P30(c, tau) == 1.0: return c, k
        u = math.nextafter(u, math.inf); d = math.nextafter(d, -math.inf)
    return None, None
betas = [1-1/10.05, 0.9, 0.95] + [1-2.0**-k for k in range(1,13)] + [1-k/4096 for k in (1,7,100,409,2047)] + list(rng.uniform(0.05,0.9999,300))
nfound = 0; maxk = 0; fails = []
for bt in betas:
    c, k = cm_search(tau_for(bt, h))
    if c is None: fails.append(bt)
    else: nfound += 1; maxk = max(maxk, k)
print(f"C_m search for P30==1: found for {nfound}/{len(betas)} betas (max {maxk} nextafter steps); failures: {fails[:10]}")
tau = tau_for(1-1/10.05, h); p = P30(1.0, tau)
bs = rng.normal(0, 0.3, 100000)
print(f"I_e=b/P30 (C_m=1, beta=1-1/10.05): exact for {(p*(bs/p)==bs).mean()*100:.2f}% of 1e5 random b")
bad = bs[p*(bs/p)!=bs][:2000]; fixed = 0
for b in bad:
    u = d = b/p; ok = False
    for k in range(50):
        if p*u == b or p*d == b: ok = True; break
        u = math.nextafter(u, math.inf); d = math.nextafter(d, -math.inf)
    fixed += ok
print(f"of {len(bad)} b where b/P30 is inexact, a nextafter search on I_e (<=50 steps) fixes {fixed}")
