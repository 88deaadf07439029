"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig
from .configuration_moog import MOOG_PRESETS, MooGConfig
from .configuration_readout import ReadoutConfig
from .configuration_rvm import RVM_PRESETS, RVMConfig
from .readout_tasks import READOUT_TASK_SPECS, READOUT_TASKS

__all__ = [
    "FourDSConfig",
    "FOURDS_PRESETS",
    "MooGConfig",
    "MOOG_PRESETS",
    "ReadoutConfig", "READOUT_TASKS", "READOUT_TASK_SPECS", "RVMConfig", "RVM_PRESETS"]
