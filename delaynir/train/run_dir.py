"""A run directory opened once: its best model, its settings and the data it was trained on.

``Run(path)`` reads ``model.pt`` (``delaynir.train.checkpoints``: safe loading, every entry checked) and rebuilds the
model on the CPU in eval mode with the run's final σ, so its delays are used rounded (the deployed form).
compile, verify, bundle, report and evaluate read a run only through it (``delaynir.compile.compiler.compile_in_memory``
compiles its model). ``model_payload`` is what training (and ``delaynir import``) writes there, so the writer
sits beside the reader; ``data_file``, ``open_dataset`` and ``input_encoding`` say how a run finds and bins its
data.

A fine-tuned run (``delaynir finetune``) stores the weight grid its weights were fake-quantised to
(``weight_grid``: q_min, q_max, step, per_output_channel) and the number format its thresholds, biases and
decays were rounded to (``number_format``: delaynir.numerics.number_formats.record_of), so loading it never reads a
target profile. A ``model.pt`` written before runs stored them gets those of its ``quantize_target``
profile, as then.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from delaynir import __version__
from delaynir.data import SpikeDataset, make_loader, validation_split
from delaynir.data.frames import FramesDataset, is_frames_file
from delaynir.data.shd import read_duration, resolve_n_channels, spike_file
from delaynir.errors import CheckpointError, ConfigError, DataFormatError, TargetError, reason
from delaynir.ir.graph import InputSpec
from delaynir.nn.model import DelaySNN, ModelConfig
from delaynir.numerics.number_formats import NumberFormat
from delaynir.numerics.quantize import WeightGrid
from delaynir.train import checkpoints
from delaynir.train.config import TrainConfig, make_config

if TYPE_CHECKING:
    from torch.utils.data import DataLoader

MAX_INPUTS = 140  #: pool=0 picks the smallest factor giving at most this many input channels
#: The DelayGraph input spec's entries taken from a run's ``data`` record (binning, encoding, value range).
INPUT_SPEC_KEYS = ("n_channels", "pool", "n_steps", "dt", "encoding", "value_range")


def data_file(data: str | Path, name: str = "train.h5") -> Path:
    """A data argument is a file, or a directory holding ``name`` (train.h5 or test.h5)."""
    data = Path(data)
    path = data / name if data.is_dir() else data
    if not path.is_file():
        raise DataFormatError(
            f"no spike data at {path}; pass an SHD-layout (or frames-layout) .h5 file or a "
            f"directory with {name} (`delaynir data synth --out DIR` or `delaynir data audio` "
            "writes one)"
        )
    return path


def open_dataset(
    path: str | Path, config: TrainConfig, *, n_steps: int | None = None, pool: int | None = None
) -> SpikeDataset | FramesDataset:
    """Open a spike file with the run's binning, or a frames file (graded input) at the run's dt;
    n_steps/pool default to the config (0 = automatic: a frames file's own frame count, no pooling)."""
    n_steps = n_steps or config.n_steps
    pool = pool or config.pool
    if is_frames_file(path):
        return FramesDataset(path, dt=config.dt, n_steps=n_steps or None, pool=pool)
    with spike_file(path) as f:  # only the header: the file is validated when the dataset opens it
        n_channels, duration = resolve_n_channels(f), read_duration(f)
    if not n_steps:
        n_steps = max(1, round((duration or 1.0) / config.dt))
    if not pool:
        pool = math.ceil(n_channels / MAX_INPUTS)
    return SpikeDataset(path, dt=config.dt, n_steps=n_steps, pool=pool)


def input_encoding(dataset: SpikeDataset | FramesDataset) -> InputSpec:
    """What the network input holds: ``spikes`` (counts per bin) or ``graded`` (real values, with their range)."""
    if isinstance(dataset, FramesDataset):  # graded = True
        return InputSpec(encoding="graded", value_range=dataset.value_range())
    return InputSpec(encoding="spikes")


def input_spec(data_info: dict[str, Any]) -> InputSpec:
    """The DelayGraph input spec of a run's ``data`` record (compile_model's ``input_info``)."""
    return InputSpec.from_dict({key: data_info[key] for key in INPUT_SPEC_KEYS if key in data_info})


def target_arithmetic(
    config: TrainConfig, data_info: dict[str, Any] | None = None
) -> tuple[WeightGrid | None, dict[str, Any] | None]:
    """(weight grid, number format record) of ``config.quantize_target``'s profile (read now) for data binned as
    ``data_info`` says (graded input: its codes); (None, None) without a target or for float weights."""
    if not config.quantize_target:
        return None, None
    from delaynir.hardware.profile import load_target
    from delaynir.numerics.number_formats import record_of
    from delaynir.numerics.quantize import grid_for

    profile = load_target(config.quantize_target)
    grid = grid_for(profile)
    return grid, (record_of(profile, input_spec(data_info or {})) if grid is not None else None)


def model_payload(
    model: DelaySNN,
    config: TrainConfig,
    data_info: dict[str, Any],
    sigma: float,
    epoch: int,
    val_accuracy: float,
    *,
    weight_grid: WeightGrid | None = None,
    number_format: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``model.pt`` holds: enough to rebuild and evaluate the model without the training state
    (``weight_grid`` and ``number_format``: what fine-tuning rounded the model to, None without)."""
    return {
        "format_version": checkpoints.FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_config": dict(vars(model.config)),
        "config": config.to_dict(),
        "data": data_info,
        "weight_grid": None if weight_grid is None else dataclasses.asdict(weight_grid),
        "number_format": number_format,
        "sigma": sigma,
        "epoch": epoch,
        "val_accuracy": val_accuracy,
        "delaynir_version": __version__,
        "config_digest": config.digest(),
    }


class Run:
    """A run directory (``delaynir train``, ``finetune`` or ``import``) read once from its ``model.pt``.

    ``path`` the directory; ``model_file`` its model.pt; ``payload`` model.pt's entries; ``config`` the
    TrainConfig; ``data_info`` how the training file was binned (model.pt's ``data``); ``weight_grid`` and
    ``number_format`` what fine-tuning rounded to (None when not fine-tuned for integer weights); ``model`` the
    best-validation DelaySNN (CPU, eval mode, rounded delays). A directory that is not a loadable run raises
    CheckpointError (TargetError for an old fine-tuned run whose profile is gone) naming the file and what to do.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model_file = self.path / checkpoints.MODEL
        self.payload = checkpoints.load_pt(self.model_file, checkpoints.MODEL_KEYS)
        try:
            self.config = make_config(self.payload["config"], source=str(self.model_file))
        except ConfigError as exc:
            raise CheckpointError(
                f"{exc}; the settings stored in it are damaged or from another delaynir "
                "version: retrain the run, or load it with the delaynir that wrote it"
            ) from None
        self.data_info: dict[str, Any] = self.payload["data"]
        self.weight_grid, self.number_format = self._arithmetic()
        self.model = self._model()

    @classmethod
    def of(cls, run: Run | str | Path) -> Run:
        """``run`` itself when already opened, else the run directory at that path."""
        return run if isinstance(run, Run) else cls(run)

    def _arithmetic(self) -> tuple[WeightGrid | None, NumberFormat | None]:
        if "weight_grid" in self.payload:
            stored, record = self.payload["weight_grid"], self.payload.get("number_format")
            grid = None if stored is None else WeightGrid(**{key: stored[key] for key in checkpoints.WEIGHT_GRID_KEYS})
        else:
            try:  # written before runs stored their grid
                grid, record = target_arithmetic(self.config, self.data_info)
            except TargetError as exc:
                raise TargetError(
                    f"{self.model_file} was fine-tuned for target {self.config.quantize_target!r} "
                    "before runs stored their weight grid, so the grid is read from that profile, "
                    f"which fails: {exc}; put the profile back where it was, or fine-tune the source "
                    "run again"
                ) from None
        return grid, (None if grid is None or record is None else NumberFormat.from_record(record))

    def _model(self) -> DelaySNN:
        try:
            model = DelaySNN(ModelConfig(**self.payload["model_config"]))
            if self.weight_grid is not None:
                model.quantize_as(self.weight_grid, self.number_format)
            model.load_state_dict(self.payload["model"])
        except (KeyError, TypeError, RuntimeError, ConfigError) as exc:
            raise CheckpointError(
                f"{self.model_file} does not match this delaynir version's model ({reason(exc)}); "
                "retrain the run, or load it with the delaynir that wrote it"
            ) from None
        model.set_sigma(self.payload["sigma"])
        return model.eval()

    @property
    def dt(self) -> float:
        """The time step (seconds) the run's data was binned at."""
        return self.data_info["dt"]

    @property
    def train_file(self) -> Path:
        """The file the run was trained (and is validated) on."""
        return Path(self.data_info["train_file"])

    @property
    def input_spec(self) -> InputSpec:
        """The DelayGraph input spec of the run's data (compile_model's ``input_info``)."""
        return input_spec(self.data_info)

    @property
    def provenance(self) -> dict[str, Any]:
        """What a graph compiled from the run records of it: the run directory, config digest and epoch."""
        return {
            "source_run": str(self.path.resolve()),
            "config_digest": self.payload.get("config_digest"),
            "epoch": self.payload.get("epoch"),
        }

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The rows of ``metrics.jsonl``, one per finished epoch (read on each access)."""
        return checkpoints.read_metrics(self.path)

    def test_file(self, data: str | Path | None = None) -> Path:
        """``data`` (a file, or a directory's test.h5), else the test.h5 beside the run's training file."""
        return data_file(self.train_file.parent if data is None else data, "test.h5")

    def dataset(self, path: str | Path | None = None) -> SpikeDataset | FramesDataset:
        """``path`` (default: the training file) binned as the run's training data; CheckpointError when it
        gives other inputs or more classes than the run was trained on."""
        path = self.train_file if path is None else Path(path)
        info = self.data_info
        dataset = open_dataset(path, self.config, n_steps=info["n_steps"], pool=info["pool"])
        if dataset.n_inputs != info["n_inputs"] or dataset.n_classes > info["n_classes"]:
            raise CheckpointError(
                f"{path} has {dataset.n_inputs} inputs and {dataset.n_classes} classes after pooling by "
                f"{info['pool']}; the run {self.path} was trained on {info['n_inputs']} inputs and "
                f"{info['n_classes']} classes"
            )
        return dataset

    def validation_loader(self, batch_size: int = 256) -> DataLoader:
        """Batches of the validation split of the training file (the run's model selection; never the test file)."""
        dataset = self.dataset()
        _, val_idx = validation_split(dataset, fraction=self.config.val_fraction, seed=self.config.seed)
        return make_loader(dataset, val_idx, batch_size=batch_size, shuffle=False)
