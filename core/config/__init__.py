"""backfill.yaml: the model and its loader."""

from core.config.loader import load_config
from core.config.model import Config, Phase, Processor

__all__ = ["Config", "Phase", "Processor", "load_config"]
