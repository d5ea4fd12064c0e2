"""The DelayGraph: its types, the neuron kinds' equations and its HDF5 file."""
