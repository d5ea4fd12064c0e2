"""Minimal DelayGraph-like layered net: float64 reference + NEST builder (mapping under test)."""
import math, numpy as np, nest
from common import tau_for, reset
# graph: layers list of dict(name, n, kind in {'input','lif','li'}, beta, theta, bias, reset in {'hard','subtract'})
# edges: list of (pre_layer, post_layer, W[npre,npost], D[npre,npost] int, mask[npre,npost] bool)
def reference(layers, edges, inputs, T):
    """delaynir semantics. inputs: [T, n_in] 0/1. Returns dict name -> (V[T,n], Z[T,n])."""
    S = {}; V = {}
    for L in layers:
        if L["kind"] == "input": S[L["name"]] = inputs.astype(np.float64)
        else: S[L["name"]] = np.zeros((T, L["n"])); V[L["name"]] = np.zeros((T, L["n"]))
    order = [L for L in layers if L["kind"] != "input"]
    for t in range(T):
        for L in order:  # topological order; recurrent edges have d>=1 so only use past
            nm = L["name"]; I = np.full(L["n"], L["bias"], dtype=np.float64)
            for (a, bname, W, D, M) in edges:
                if bname != nm: continue
                for dd in np.unique(D[M]):
                    if t - dd < 0: continue
                    Wd = np.where(M & (D == dd), W, 0.0)
                    I = I + S[a][t - dd] @ Wd
            vp = V[nm][t-1] if t > 0 else np.zeros(L["n"]); zp = S[nm][t-1] if t > 0 else np.zeros(L["n"])
            b = L["beta"]
            if L["kind"] == "li": v = b * vp + I
            elif L["reset"] == "hard": v = b * vp * (1 - zp) + I
            else: v = b * vp - L["theta"] * zp + I
            V[nm][t] = v
            if L["kind"] != "li": S[nm][t] = (v > L["theta"]).astype(float)
    return V, S

def build_nest(layers, edges, inputs, T, h=1.0, th_mode="strict", bias_mode="spike"):
    """Mapping: layer depth delta; delaynir step t of a depth-delta layer == NEST step whose
    record/spike time stamp is (t+1+delta)*h. Edge delay d -> NEST delay (d + depth(post) - depth(pre))*h.
    Input spike at step t -> spike_generator time (t+1)*h."""
    depth = {}; name2L = {L["name"]: L for L in layers}
    for L in layers:   # longest path over edges with d-shift needs: feed-forward edges raise depth
        if L["kind"] == "input": depth[L["name"]] = 0
    changed = True
    while changed:
        changed = False
        for (a, bname, W, D, M) in edges:
            if a == bname: continue
            if a in depth:
                nd = depth[a] + 1
                if depth.get(bname, -1) < nd: depth[bname] = nd; changed = True
    nodes = {}
    for L in layers:
        nm = L["name"]; dl = depth[nm]
        if L["kind"] == "input":
            gens = nest.Create("spike_generator", L["n"])
            gens.set([dict(spike_times=[float((t + 1) * h) for t in np.nonzero(inputs[:, i])[0]]) for i in range(L["n"])])
            nodes[nm] = gens; continue
        tau = tau_for(L["beta"], h)
        thr = math.nextafter(L["theta"], math.inf) if th_mode == "strict" else L["theta"]
        if L["kind"] == "li": thr = 1e300
        if L["kind"] == "lif" and L["reset"] == "subtract":
            nd = nest.Create("eprop_iaf", L["n"], params=dict(C_m=1.0, E_L=0.0, V_m=0.0, V_th=thr, t_ref=0.0, tau_m=tau, V_min=-1e300, I_e=0.0))
        else:
            nd = nest.Create("iaf_psc_delta", L["n"], params=dict(C_m=1.0, E_L=0.0, V_m=0.0, V_reset=0.0, V_th=thr, t_ref=0.0, tau_m=tau, V_min=-1e300, I_e=0.0))
        nodes[nm] = nd
        if L["kind"] == "lif" and L["reset"] == "subtract":
            # NEST 3.10 eprop_iaf: u[t] = beta*u[t-1] + I[t]; if u >= V_th: spike, u -= V_th (same step).
            # delaynir: v[t] = beta*v[t-1] - theta*z[t-1] + I[t]  -> add autapse weight beta*V_th - theta, delay 1 step
            a = L["beta"] * thr - L["theta"]
            nest.Connect(nd, nd, "one_to_one", syn_spec=dict(weight=a, delay=h))
            L["_nest_vth"] = thr
        if L["bias"] != 0.0:
            bg = nest.Create("spike_generator", params=dict(spike_times=[float((t + dl) * h) for t in range(T)]))
            nest.Connect(bg, nd, "all_to_all", syn_spec=dict(weight=L["bias"], delay=h))
    for (a, bname, W, D, M) in edges:
        ii, jj = np.nonzero(M)
        shift = depth[bname] - depth[a]
        Dn = (D[ii, jj] + shift).astype(float) * h
        assert Dn.min() >= h, "edge needs NEST delay >= 1 step"
        pre = np.array(nodes[a].tolist())[ii]; post = np.array(nodes[bname].tolist())[jj]
        nest.Connect(pre, post, "one_to_one", syn_spec=dict(weight=W[ii, jj].astype(float), delay=Dn))
    return nodes, depth

def run_nest(layers, edges, inputs, T, h=1.0, **kw):
    nodes, depth = build_nest(layers, edges, inputs, T, h, **kw)
    maxd = max(depth.values()); recs = {}
    for L in layers:
        if L["kind"] == "input": continue
        mm = nest.Create("multimeter", params=dict(record_from=["V_m"], interval=h))
        sr = nest.Create("spike_recorder"); nest.Connect(mm, nodes[L["name"]]); nest.Connect(nodes[L["name"]], sr)
        recs[L["name"]] = (mm, sr)
    nest.Simulate((T + maxd + 2) * h)
    V = {}; Z = {}
    for L in layers:
        if L["kind"] == "input": continue
        nm = L["name"]; mm, sr = recs[nm]; dl = depth[nm]; ids = np.array(nodes[nm].tolist()); first = ids[0]
        ev = mm.events; steps = np.rint(ev["times"] / h).astype(int) - 1 - dl
        ok = (steps >= 0) & (steps < T)
        Vn = np.full((T, L["n"]), np.nan); Vn[steps[ok], np.asarray(ev["senders"], dtype=int)[ok] - first] = ev["V_m"][ok]
        es = sr.events; st = np.rint(es["times"] / h).astype(int) - 1 - dl; ok = (st >= 0) & (st < T)
        Zn = np.zeros((T, L["n"])); Zn[st[ok], np.asarray(es["senders"], dtype=int)[ok] - first] = 1
        V[nm] = Vn; Z[nm] = Zn
    return V, Z, depth
