import nest
nest.set_verbosity("M_ERROR")
ms = nest.node_models
print(len(ms), "node models")
print(" ".join(ms))
for m in ["iaf_psc_delta","eprop_iaf","eprop_iaf_psc_delta","eprop_iaf_adapt","eprop_iaf_psc_delta_adapt","eprop_readout","mat2_psc_exp","ignore_and_fire"]:
    if m in ms:
        d = nest.GetDefaults(m)
        keep = {k:v for k,v in d.items() if not isinstance(v,(tuple,list)) and k not in ("element_type","model_id","node_uses_wfr","thread_local_id","vp","frozen","global_id","local","thread","archiver_length","synaptic_elements","recordables")}
        print("\n##", m, keep)
        print("   recordables:", d.get("recordables"))
# any param names containing 'reset'
for m in ms:
    try: d = nest.GetDefaults(m)
    except Exception: continue
    ks = [k for k in d if 'reset' in k.lower() or 'subtract' in k.lower()]
    if ks: print(m, ks)
