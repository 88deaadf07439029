"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig
from .configuration_moog import MOOG_PRESETS, MooGConfig
from .configuration_readout import READOUT_TASKS, ReadoutConfig
from .configuration_rvm import RVM_PRESETS, RVMConfig

__all__ = [
    "FourDSConfig",
    "FOURDS_PRESETS",
    "MooGConfig",
    "MOOG_PRESETS",
    "ReadoutConfig", "READOUT_TASKS", "RVMConfig", "RVM_PRESETS"]
