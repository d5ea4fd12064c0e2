"""Files, HDF5 and memory helpers every stage uses."""
