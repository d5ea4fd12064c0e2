"""The reference simulator: what a deployed DelayGraph computes."""
