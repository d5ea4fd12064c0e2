"""Hardware target profiles, their table and the fit check."""
