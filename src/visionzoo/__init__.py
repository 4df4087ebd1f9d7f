"""visionzoo: a PyTorch model zoo with one CLI for training, evaluation, benchmarking and export."""

from visionzoo.errors import VisionZooError

__version__ = "0.1.0"
__all__ = ["VisionZooError", "__version__"]
