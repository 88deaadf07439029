"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig

__all__ = ["FourDSConfig", "FOURDS_PRESETS"]
from .configuration_rvm import RVM_PRESETS, RVMConfig  # noqa: E402

__all__ += ["RVMConfig", "RVM_PRESETS"]
