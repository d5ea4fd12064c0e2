"""Training: settings, presets, the loop, run directories, imported models, evaluation."""
