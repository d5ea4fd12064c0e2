"""Training configuration: one flat, documented set of settings, readable from TOML.

Every field has a default (the anchor setting of docs/design.md where one exists). A TOML
file may set any of them at top level; command-line flags override the file. The
effective configuration is written to ``config.toml`` in the run directory and can be
passed back with ``--config``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delaynir.common.text import read_text
from delaynir.data.split import VAL_FRACTION
from delaynir.errors import ConfigError
from delaynir.nn.delay import DELAY_MODES as DELAY_MODES  # the choices of `delays`, re-exported with the others
from delaynir.nn.sparse_delay import STRUCTURES

if TYPE_CHECKING:
    from delaynir.nn.model import ModelConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


PRUNE_METHODS = ("none", "deepr-rigl", "deepr-random")
LR_SCHEDULES = ("one-cycle", "cosine", "constant")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    # data
    dt: float = 0.01  #: time step, seconds
    n_steps: int = 0  #: steps per sample (pad/crop); 0 = the file's `duration` attribute / dt, else 1 s
    pool: int = 0  #: channel pooling factor; 0 = smallest factor giving <= 140 inputs (SHD: 700 → 140)
    val_fraction: float = VAL_FRACTION  #: held out from the training file for model selection
    # model
    hidden: list[int] = field(default_factory=lambda: [256, 256])
    max_delay: int = 25  #: delay taps D, delays 0 … D − 1 steps
    delays: str = "learned"  #: learned | fixed-random | none
    tau_steps: float = 10.05  #: membrane time constant in steps (β = 1 − 1/τ)
    threshold: float = 1.0
    reset: str = "hard"  #: hard | subtract
    surrogate_alpha: float = 5.0  #: ATan surrogate sharpness
    batchnorm: bool = True
    dropout: float = 0.1  #: speech benchmark, 30 epochs: 0.1 beats the paper's 0.4 (README "Training recipe")
    # sparse connectivity and dynamic pruning (delaynir.nn.sparse_delay, delaynir.nn.rewiring)
    sparsity: float = 0.0  #: fraction of candidate connections inactive per layer (paper: 1 − 2^-k); 0 = dense
    prune: str = "none"  #: none (a fixed random mask when sparsity > 0) | deepr-rigl | deepr-random
    structure: str = "pairs"  #: pairs: (pre, post), a DCLS delay each | taps: (pre, post, delay), fixed delays
    dale: bool = False  #: one sign per presynaptic neuron instead of one per connection (needs prune)
    prune_l1: float = 1e-5  #: L1 coefficient α on the magnitudes θ (gradient α per active connection)
    prune_temperature: float = 0.0  #: DEEP R Langevin noise temperature T (θ += √(2 lr T) ν); 0 = off
    regrow_magnitude: float = 1e-3  #: magnitude θ of a regrown connection
    rewire_interval: int = 1  #: regrow to the budget every this many batches (removal happens every batch)
    regrow_pool: int = 0  #: RigL scores P · m dormant candidates drawn at random to regrow m (0: all of them)
    prune_readout: bool = False  #: make the readout layer sparse too (otherwise only hidden layers)
    # optimisation
    epochs: int = 150
    batch_size: int = 64  #: 64 gives ~30 updates per epoch on a 2,000-sample set (256: 8)
    lr: float = 5e-3  #: Adam learning rate of weights: the one-cycle peak (SNN-delays' max_lr)
    position_lr_factor: float = 20.0  #: positions' rate = 20 × lr = 0.1, as SNN-delays (constant in lr)
    weight_decay: float = 1e-5
    lr_schedule: str = "one-cycle"  #: weights: one-cycle | cosine | constant, per batch (delaynir.train.loop.lr_factor)
    position_lr_schedule: str = "cosine"  #: delay positions: full rate while σ is wide, then down
    sigma_init: float = 0.0  #: Gaussian width at the start, steps; 0 = max_delay / 2
    sigma_final: float = 0.5  #: width after the annealing phase, steps
    sigma_fraction: float = 0.25  #: fraction of training over which σ anneals (geometrically)
    # quantisation-aware fine-tuning (set by `delaynir finetune`)
    init_from: str = ""  #: start from the weights of this model.pt
    quantize_target: str = ""  #: fake-quantise weights for this target; rounded delays, frozen BatchNorm
    # run
    seed: int = 0
    device: str = "auto"  #: auto | cpu | cuda
    amp: bool = True  #: mixed precision (bfloat16 autocast) on CUDA; ignored on CPU
    num_workers: int = 0

    def validate(self) -> None:
        checks = [
            (self.dt > 0, f"dt must be > 0 seconds (got {self.dt})"),
            (self.n_steps >= 0, f"n_steps must be >= 0 (got {self.n_steps})"),
            (self.pool >= 0, f"pool must be >= 0 (got {self.pool})"),
            (0 < self.val_fraction < 1, f"val_fraction must be in (0, 1) (got {self.val_fraction})"),
            (self.epochs >= 1, f"epochs must be >= 1 (got {self.epochs})"),
            (self.batch_size >= 1, f"batch_size must be >= 1 (got {self.batch_size})"),
            (self.lr > 0, f"lr must be > 0 (got {self.lr})"),
            (
                self.lr_schedule in LR_SCHEDULES,
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got {self.lr_schedule!r})",
            ),
            (
                self.position_lr_schedule in LR_SCHEDULES,
                f"position_lr_schedule must be one of {', '.join(LR_SCHEDULES)} (got {self.position_lr_schedule!r})",
            ),
            (self.sigma_init >= 0 and self.sigma_final > 0, "sigma_init must be >= 0 and sigma_final > 0"),
            (0 < self.sigma_fraction <= 1, f"sigma_fraction must be in (0, 1] (got {self.sigma_fraction})"),
            (self.device in DEVICES, f"device must be {_either(DEVICES)} (got {self.device!r})"),
            (0 <= self.sparsity < 1, f"sparsity must be in [0, 1) (got {self.sparsity})"),
            (self.prune in PRUNE_METHODS, f"prune must be one of {', '.join(PRUNE_METHODS)} (got {self.prune!r})"),
            (self.structure in STRUCTURES, f"structure must be {_either(STRUCTURES)} (got {self.structure!r})"),
            (not self.dale or self.prune != "none", "dale needs a pruning method (prune deepr-rigl or deepr-random)"),
            (
                self.prune_l1 >= 0 and self.prune_temperature >= 0 and self.regrow_magnitude >= 0,
                "prune_l1, prune_temperature and regrow_magnitude must be >= 0",
            ),
            (self.rewire_interval >= 1, f"rewire_interval must be >= 1 batch (got {self.rewire_interval})"),
            (self.regrow_pool >= 0, f"regrow_pool must be >= 0 (0: score every candidate; got {self.regrow_pool})"),
            (
                self.weight_decay >= 0 and self.position_lr_factor >= 0,
                "weight_decay and position_lr_factor must be >= 0",
            ),
            (self.num_workers >= 0, f"num_workers must be >= 0 (got {self.num_workers})"),
        ]
        checks += [
            (math.isfinite(value), f"{key} must be a finite number (got {value})")
            for key, value in self.to_dict().items()
            if isinstance(value, float)
        ]
        problems = [msg for ok, msg in checks if not ok] + self.model_config(1, 1).problems()
        if problems:
            raise ConfigError("invalid training configuration:\n  " + "\n  ".join(dict.fromkeys(problems)))

    def model_config(self, n_inputs: int, n_outputs: int) -> ModelConfig:
        """The network these settings build for ``n_inputs`` inputs and ``n_outputs`` classes (a ModelConfig)."""
        from delaynir.nn.model import ModelConfig

        return ModelConfig(
            n_inputs=n_inputs,
            n_outputs=n_outputs,
            hidden=list(self.hidden),
            max_delay=self.max_delay,
            delays=self.delays,
            tau_steps=self.tau_steps,
            threshold=self.threshold,
            reset=self.reset,
            surrogate_alpha=self.surrogate_alpha,
            batchnorm=self.batchnorm,
            dropout=self.dropout,
            sparsity=self.sparsity,
            structure=self.structure,
            sparse_readout=self.prune_readout,
            signs="free" if self.prune == "none" else "dale" if self.dale else "random",
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """Short SHA-256 of the configuration (provenance)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _either(choices: tuple[str, ...]) -> str:
    """('a', 'b', 'c') -> 'a, b or c'."""
    return f"{', '.join(choices[:-1])} or {choices[-1]}"


def _coerce(name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"config key {name!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, list):
        if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"config key {name!r} must be a list of integers, got {value!r}")
        return list(value)
    if not isinstance(value, expected) or isinstance(value, bool):
        raise ConfigError(f"config key {name!r} must be of type {expected.__name__}, got {value!r}")
    return value


def make_config(values: dict[str, Any] | None = None, *, source: str = "settings") -> TrainConfig:
    """Build and validate a TrainConfig from a mapping; unknown keys and wrong types are errors."""
    defaults = TrainConfig()
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    values = dict(values or {})
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
        )
    try:
        coerced = {k: _coerce(k, v, getattr(defaults, k)) for k, v in values.items()}
        config = dataclasses.replace(defaults, **coerced)
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return config


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML file (not yet validated)."""
    path = Path(path)
    text = read_text(path, ConfigError, "config file")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(
    path: str | Path | None, overrides: dict[str, Any] | None = None, *, base: dict[str, Any] | None = None
) -> TrainConfig:
    """``base`` (e.g. a preset, delaynir.train.presets), then a TOML file (optional), then ``overrides`` (e.g. from
    command-line flags; None values are skipped), over the defaults."""
    values: dict[str, Any] = dict(base or {})
    if path is not None:
        values.update(read_config_file(path))
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(flags)
    source = "settings" if path is None else str(path) + (" with the command-line flags" if flags else "")
    return make_config(values, source=source)


def dumps_toml(values: dict[str, Any]) -> str:
    """Write a flat mapping of str, int, float, bool and lists of int as TOML."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, float)):
            text = repr(value)
        elif isinstance(value, str):
            text = json.dumps(value)
        elif isinstance(value, list):
            text = "[" + ", ".join(repr(v) for v in value) + "]"
        else:
            raise ConfigError(f"cannot write setting {key!r} of type {type(value).__name__} as TOML")
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"
