"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig
from .configuration_moog import MOOG_PRESETS, MooGConfig

__all__ = ["FourDSConfig", "FOURDS_PRESETS", "MooGConfig", "MOOG_PRESETS"]
