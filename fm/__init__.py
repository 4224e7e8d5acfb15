"""MAX-FM: time-series foundation models for manufacturing."""

from fm.model import ArchConfig, MaxFMConfig, MaxFMModel

__version__ = "0.1.0"
__all__ = ["ArchConfig", "MaxFMConfig", "MaxFMModel", "__version__"]
