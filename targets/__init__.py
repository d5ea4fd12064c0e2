"""Hardware target profiles and target-specific writers (installed as delaynir.targets)."""
