"""Spike data: SHD-layout HDF5 files, binning to frames, validation splits, loaders, a synthetic task,
and spoken digits (espeak-ng audio in the Heidelberg Digits layout, spikes from a cochlea model);
graded input: audio → mel-filterbank features (the paper's RawHD preprocessing) → the frames layout.

See docs/data-format.md for the file layout read and written here.
"""

from delaynir.data.audio import convert_audio
from delaynir.data.binning import bin_events
from delaynir.data.cochlea import Cochlea, CochleaConfig
from delaynir.data.features import FeatureConfig
from delaynir.data.frames import FramesDataset, is_frames_file, write_frames_file
from delaynir.data.shd import SpikeDataset, validate_file
from delaynir.data.speech import SpeechConfig, generate_speech, hd_filename, parse_hd_filename, read_split
from delaynir.data.split import make_loader, validation_split
from delaynir.data.synth import SynthConfig, generate_synthetic, write_spike_file

__all__ = [
    "Cochlea",
    "CochleaConfig",
    "FeatureConfig",
    "FramesDataset",
    "SpeechConfig",
    "SpikeDataset",
    "SynthConfig",
    "bin_events",
    "convert_audio",
    "generate_speech",
    "generate_synthetic",
    "hd_filename",
    "is_frames_file",
    "make_loader",
    "parse_hd_filename",
    "read_split",
    "validate_file",
    "validation_split",
    "write_frames_file",
    "write_spike_file",
]
