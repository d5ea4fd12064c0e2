# Q6: speed of 140->256->256->20 (li readout), ~100k synapses, T=120; multi-sample in one simulation with reset between.
import time, math, numpy as np, nest
from common import reset, tau_for
h = 1.0; T = 120; B = 6
rng = np.random.default_rng(0)
sizes = [140, 256, 256, 20]
Ws = [rng.normal(0, s, (a, b)) for (a, b), s in zip(zip(sizes[:-1], sizes[1:]), [0.25, 0.12, 0.1])]
Ds = [rng.integers(0, 6, W.shape) for W in Ws]
beta, theta, bias = 1 - 1/10.05, 1.0, 0.02
nsyn = sum(W.size for W in Ws); print("synapses", nsyn)
samples = [(rng.random((T, 140)) < 0.05).astype(int) for _ in range(B)]
maxD = 5 + 1; G = maxD + 4            # flush gap (steps)
period = T + 3 + G                    # per-sample window: T steps + depth 3 + gap
def build(offsets_inputs):
    reset(h); nest.local_num_threads = 1
    gens = nest.Create("spike_generator", 140)
    st = [[] for _ in range(140)]
    for off, X in offsets_inputs:
        for i in range(140): st[i] += [float(off + t + 1) for t in np.nonzero(X[:, i])[0]]
    gens.set([dict(spike_times=s) for s in st])
    p = dict(C_m=1.0, E_L=0.0, V_m=0.0, V_reset=0.0, t_ref=0.0, tau_m=tau_for(beta, h), V_min=-1e300, I_e=0.0)
    L1 = nest.Create("iaf_psc_delta", 256, params=p | dict(V_th=math.nextafter(theta, math.inf)))
    L2 = nest.Create("iaf_psc_delta", 256, params=p | dict(V_th=math.nextafter(theta, math.inf)))
    L3 = nest.Create("iaf_psc_delta", 20, params=p | dict(V_th=1e300))
    layers = [gens, L1, L2, L3]
    for dl, L in [(1, L1), (2, L2)]:
        bg = nest.Create("spike_generator", params=dict(spike_times=[float(off + t + dl) for off, _ in offsets_inputs for t in range(T)]))
        nest.Connect(bg, L, "all_to_all", syn_spec=dict(weight=bias, delay=h))
    for k in range(3):
        ii, jj = np.nonzero(np.ones_like(Ws[k], dtype=bool))
        pre = np.array(layers[k].tolist())[ii]; post = np.array(layers[k+1].tolist())[jj]
        nest.Connect(pre, post, "one_to_one", syn_spec=dict(weight=Ws[k][ii, jj], delay=(Ds[k][ii, jj] + 1).astype(float)))
    sr = nest.Create("spike_recorder"); nest.Connect(L2, sr)
    mm = nest.Create("multimeter", params=dict(record_from=["V_m"], interval=h)); nest.Connect(mm, L3)
    return layers, sr, mm
def extract(sr, mm, off, first2, first3):
    es = sr.events; t2 = np.rint(es["times"]).astype(int) - off - 1 - 2; m = (t2 >= 0) & (t2 < T)
    spikes = sorted(zip(t2[m].tolist(), (np.asarray(es["senders"], int)[m] - first2).tolist()))
    ev = mm.events; t3 = np.rint(ev["times"]).astype(int) - off - 1 - 3; m = (t3 >= 0) & (t3 < T)
    V = np.zeros((T, 20)); V[t3[m], np.asarray(ev["senders"], int)[m] - first3] = ev["V_m"][m]
    return spikes, V
# (a) one sample per fresh kernel
single = []; tb = ts = 0
for k in range(B):
    t0 = time.perf_counter(); layers, sr, mm = build([(0, samples[k])]); t1 = time.perf_counter()
    nest.Simulate(float(T + 3 + 1)); t2 = time.perf_counter()
    tb += t1 - t0; ts += t2 - t1
    single.append(extract(sr, mm, 0, layers[2].tolist()[0], layers[3].tolist()[0]))
print(f"(a) fresh kernel per sample: build {tb/B*1e3:.0f} ms/sample, simulate {ts/B*1e3:.0f} ms/sample, spikes L2/sample ~{np.mean([len(s[0]) for s in single]):.0f}")
# (b) all samples in one kernel; between samples: V_th=huge for G steps (flush in-flight spikes), then V_m=0, V_th restored
t0 = time.perf_counter()
layers, sr, mm = build([(k * period, samples[k]) for k in range(B)]); t1 = time.perf_counter()
lif = layers[1] + layers[2]; allv = lif + layers[3]
for k in range(B):
    nest.Simulate(float(T + 3 + 1))
    lif.V_th = 1e300; nest.Simulate(float(period - (T + 3 + 1)))
    allv.V_m = 0.0; lif.V_th = math.nextafter(theta, math.inf)
t2 = time.perf_counter()
ok_s = ok_v = 0
for k in range(B):
    s, V = extract(sr, mm, k * period, layers[2].tolist()[0], layers[3].tolist()[0])
    ok_s += s == single[k][0]; ok_v += np.array_equal(V, single[k][1])
print(f"(b) one kernel, {B} samples: build {(t1-t0)*1e3:.0f} ms total, simulate {(t2-t1)/B*1e3:.0f} ms/sample; "
      f"identical to fresh-kernel runs: spikes {ok_s}/{B}, readout V bit-identical {ok_v}/{B}")
# (c) same but WITHOUT the V_th/V_m reset (only silent gap)
layers, sr, mm = build([(k * period, samples[k]) for k in range(B)]); nest.Simulate(float(B * period))
ok_s = ok_v = 0
for k in range(B):
    s, V = extract(sr, mm, k * period, layers[2].tolist()[0], layers[3].tolist()[0])
    ok_s += s == single[k][0]; ok_v += np.array_equal(V, single[k][1])
print(f"(c) silent gap of {G} steps only, no reset: identical spikes {ok_s}/{B}, readout V bit-identical {ok_v}/{B}")
