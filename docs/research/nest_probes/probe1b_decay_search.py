# Q1b: for the betas that failed, is ANY float64 x with exp(x)==beta reachable? (two-stage search: x, then tau with -h/tau == x)
import math, numpy as np
from common import *
def search2(beta, h, W=4096):
    x0 = math.log(beta); xs = [x0]; u = d = x0
    for _ in range(W):
        u = math.nextafter(u, math.inf); d = math.nextafter(d, -math.inf); xs += [u, d]
    good = [x for x in xs if math.exp(x) == beta]
    if not good: return None, "no float64 x with exp(x)==beta within +-%d ulps of ln(beta)" % W
    for x in sorted(good, key=lambda x: abs(x - x0)):
        t = -h / x; tu = td = t
        for k in range(2000):
            for c in (tu, td):
                if -h / c == x and math.exp(-h / c) == beta: return c, f"x at {round((x-x0)/ (math.ulp(x0)))} ulps, tau found after {k} nextafter steps"
            tu = math.nextafter(tu, math.inf); td = math.nextafter(td, -math.inf)
    return None, "x exists but no tau maps onto it"
cases = {"1-4095/4096": 1-4095/4096, "rand2": 0.3286773694029427, "rand3": 0.3115676921064175, "0.5": 0.5, "0.25": 0.25, "0.3": 0.3, "0.4": 0.4, "1-2^-1": 0.5}
for n, b in cases.items():
    for h in (1.0, 0.1):
        print(n, b, "h=", h, "naive exact:", math.exp(-h/tau_for(b,h)) == b, "->", search2(b, h))
# statistics: fraction of random betas reachable vs beta range
rng = np.random.default_rng(1)
for lo, hi in [(0.05,0.2),(0.2,0.37),(0.37,0.6),(0.6,0.9),(0.9,0.999)]:
    bs = rng.uniform(lo, hi, 200); nn = sum(math.exp(-1.0/tau_for(b,1.0)) == b for b in bs)
    ns = sum(search_tau(b,1.0,64)[0] is not None for b in bs)
    n2 = sum(search2(b,1.0,256)[0] is not None for b in bs[:50])
    print(f"beta in [{lo},{hi}): naive exact {nn}/200, 64-step tau search {ns}/200, two-stage search {n2}/50")
