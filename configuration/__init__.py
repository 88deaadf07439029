"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig
from .configuration_readout import READOUT_TASKS, ReadoutConfig
from .configuration_rvm import RVM_PRESETS, RVMConfig

__all__ = ["FourDSConfig", "FOURDS_PRESETS", "ReadoutConfig", "READOUT_TASKS", "RVMConfig", "RVM_PRESETS"]
