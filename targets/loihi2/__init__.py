"""Intel Loihi 2 (through Lava): the ``loihi2-fixed`` arithmetic (``arithmetic``), the netx writer (``netx``),
the Lava runner script run by the Lava environment (``lava_run.py``), that environment's build script and
notes (``build_lava_env.sh``, ``LAVA_NOTES.md``); the profile is ``targets/loihi2.toml``."""
