from delaynir.nn.delay import DelayLinear, gaussian_taps
from delaynir.nn.delay_conv import delayed_sum

__all__ = ["DelayLinear", "delayed_sum", "gaussian_taps"]
