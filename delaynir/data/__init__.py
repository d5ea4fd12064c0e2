"""Spike data: SHD-layout HDF5 files, binning to frames, validation splits, loaders, a synthetic task.

See docs/data-format.md for the file layout read and written here.
"""

from delaynir.data.binning import bin_events
from delaynir.data.shd import SpikeDataset, validate_file
from delaynir.data.split import make_loader, validation_split
from delaynir.data.synth import SynthConfig, generate_synthetic, write_spike_file

__all__ = [
    "SpikeDataset",
    "SynthConfig",
    "bin_events",
    "generate_synthetic",
    "make_loader",
    "validate_file",
    "validation_split",
    "write_spike_file",
]
