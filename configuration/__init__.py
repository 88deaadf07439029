"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig

__all__ = ["FourDSConfig", "FOURDS_PRESETS"]
