import math, numpy as np, nest
nest.set_verbosity("M_ERROR")
def tau_for(beta, h):
    return -h / math.log(beta)
def search_tau(beta, h, maxsteps=64):
    """nextafter search for tau with exp(-h/tau) == beta in float64 (Python/libm exp)."""
    t0 = tau_for(beta, h)
    if math.exp(-h / t0) == beta: return t0, 0
    up, dn = t0, t0
    for k in range(1, maxsteps + 1):
        up = math.nextafter(up, math.inf); dn = math.nextafter(dn, -math.inf)
        if math.exp(-h / up) == beta: return up, k
        if math.exp(-h / dn) == beta: return dn, -k
    return None, None
def reset(h=1.0):
    nest.ResetKernel(); nest.set_verbosity("M_ERROR")
    nest.resolution = h
