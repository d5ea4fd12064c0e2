"""Number formats and quantisers: how a target stores decays, thresholds, weights and input."""
