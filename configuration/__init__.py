"""Model configurations (``rep4d.configuration``)."""

from .configuration_fourds import FOURDS_PRESETS, FourDSConfig

__all__ = ["FourDSConfig", "FOURDS_PRESETS"]

from .configuration_readout import READOUT_TASKS, ReadoutConfig  # noqa: E402

__all__ += ["ReadoutConfig", "READOUT_TASKS"]
