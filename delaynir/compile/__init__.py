"""A trained model compiled into a quantised, integer-delay DelayGraph for a target."""
