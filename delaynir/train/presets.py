"""Named sets of training settings: ``delaynir train --preset NAME`` (``--dry-run`` prints every value).

Precedence, lowest first: TrainConfig defaults < preset < ``--config`` file < command-line flags.

``rawhd-paper`` is the configuration of the paper's code (github mbalazs98/spatiotemporal,
``best_config_RawHD.py``, ``snn_delays.py``, ``layers.py``) on RawHD, in delaynir's terms. Where the
paper's code names a value differently, the note says how it maps.
"""

from __future__ import annotations

from typing import Any

from delaynir.errors import ConfigError

#: preset name -> setting -> (value, note on where it comes from)
PRESETS: dict[str, dict[str, tuple[Any, str]]] = {
    "rawhd-paper": {
        "dt": (0.01, "10 ms frames (the features' hop)"),
        "n_steps": (0, "the frames file's frame count"),
        "pool": (0, "40 mel bands are not pooled"),
        "hidden": ([256], "n_hidden_layers = 1, n_hidden_neurons = 256"),
        "max_delay": (25, "max_delay = 25 taps (odd, kept)"),
        "delays": ("learned", "model_type = 'snn_delays': DCLS Gaussian kernels"),
        "tau_steps": (10.05, "init_tau = 10.05; its LIF decays by 1 − 1/τ per step"),
        "threshold": (1.0, "v_threshold"),
        "reset": (
            "hard",
            "the paper's LIF zeroes the membrane after a spike; it also drops that step's input "
            "(one-step synaptic lag), which delaynir's hard reset keeps",
        ),
        "surrogate_alpha": (5.0, "SurrGradSpike α = 5: α/2 / (1 + (π/2 α v)²), the ATan derivative"),
        "batchnorm": (True, "use_batchnorm"),
        "dropout": (0.4, "dropout_p"),
        "epochs": (150, "epochs"),
        "batch_size": (256, "batch_size"),
        "lr": (5e-3, "one-cycle to max_lr_w = 5 × lr_w = 5e-3"),
        "lr_schedule": ("one-cycle", "scheduler_w = 'one_cycle'"),
        "position_lr_factor": (20.0, "lr_pos = 100 × lr_w (1e-3) = 0.1 = 20 × the peak 5e-3"),
        "position_lr_schedule": ("cosine", "scheduler_pos = 'cosine_a'"),
        "weight_decay": (0.0, "weight_decay = 0"),
        "sigma_init": (12.27, "sigInit = max_delay // 2 = 12; the kernel's width is |SIG| + 0.27 (DCLS)"),
        "sigma_final": (0.5, "0.23 + 0.27: the width reached when SIG is 0.23"),
        "sigma_fraction": (0.25, "final_epoch = epochs // 4"),
        "prune_l1": (1e-2, "pruning variants: l1_lambda = 0.01"),
        "regrow_magnitude": (1e-12, "pruning variants: RigL regrows at magnitude 1e-12"),
        "rewire_interval": (1, "pruning variants: removal and regrowth after every batch"),
        "regrow_pool": (0, "pruning variants: RigL scores every dormant candidate"),
    },
}

#: What the paper's code does that a preset cannot set, printed by ``--dry-run``.
PRESET_NOTES: dict[str, list[str]] = {
    "rawhd-paper": [
        "pruning variants (off by default): --prune deepr-rigl --dale --sparsity 1-2^-k "
        "(0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375, 0.9921875, 0.99609375, 0.998046875), "
        "--structure pairs (DCLS per synapse) or taps (fixed delays, structure learned)",
        "the paper selects the model on the test set; delaynir holds out val_fraction of the training file",
        "the paper's σ decreases per epoch, delaynir's per batch along the same geometric curve",
        "the paper's loader multiplies the RawHD arrays by 20 (delaynir's features include it: scale 0.0198)",
    ],
}


def preset_values(name: str | None) -> dict[str, Any]:
    """The settings of preset ``name`` (empty for None); ConfigError naming the presets for an unknown one."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))}")
    return {key: value for key, (value, _) in PRESETS[name].items()}


def preset_note(name: str | None, key: str) -> str:
    """Why preset ``name`` sets ``key`` as it does ('' when it does not set it)."""
    return PRESETS.get(name or "", {}).get(key, (None, ""))[1]


def setting_sources(
    values: dict[str, Any], preset: str | None, file_values: dict[str, Any], flags: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each of ``values`` (the effective settings) with where it comes from, by precedence: a command-line flag
    (``flags``, None when not given), the config file (``file_values``), preset ``preset``, or the default; for
    a preset's, its note."""
    base = preset_values(preset)

    def source(key: str) -> str:
        if flags.get(key) is not None:
            return "flag"
        if key in file_values:
            return "config file"
        return f"preset {preset}" if key in base else "default"

    rows = [{"setting": key, "value": value, "from": source(key)} for key, value in values.items()]
    for row in rows:
        row["note"] = preset_note(preset, row["setting"]) if row["from"].startswith("preset") else ""
    return rows
