from delaynir.nn.delay import DelayLinear, gaussian_taps
from delaynir.nn.delay_conv import delayed_sum
from delaynir.nn.sparse_conv import TapList, sparse_delayed_sum
from delaynir.nn.sparse_delay import SparseDelayLinear

__all__ = ["DelayLinear", "SparseDelayLinear", "TapList", "delayed_sum", "gaussian_taps", "sparse_delayed_sum"]
