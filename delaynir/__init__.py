"""delaynir: spiking neural networks with learnable synaptic delays.

Train (``delaynir.train``), with delay layers from ``delaynir.nn`` on spike data
from ``delaynir.data``. See README.md for the pipeline and docs/design.md for the design.
"""

import logging

from delaynir.errors import DelayNIRError

__version__ = "0.1.0"
__all__ = ["DelayNIRError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
