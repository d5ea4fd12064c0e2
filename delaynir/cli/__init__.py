"""The ``delaynir`` command. Every command that reports figures takes ``--json``.

One module per command group, each building its parsers beside its handlers (``register``): ``data``,
``training`` (train, finetune, evaluate), ``graphs`` (targets, compile, simulate, export, import,
import-model), ``handoff`` (verify, bundle, report), ``demo``. A handler parses, calls the library and prints;
``common`` holds what they share, the exit-code policy among it. Logs show warnings only, ``-v`` adds INFO.
"""

from __future__ import annotations

import argparse
import logging
import sys

from delaynir import __version__
from delaynir.cli import common, data, demo, graphs, handoff, training
from delaynir.nn.allocator import tune_cpu_allocator


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="delaynir", description="Spiking networks with learnable synaptic delays.")
    p.add_argument("--version", action="version", version=f"delaynir {__version__}")
    verbosity = p.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO) too")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only (the default)")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (data, training, graphs, handoff, demo):
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_cpu_allocator()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return common.run(args.func, args)
