"""llmrec: the pure core of a streaming, text-aware recommender.

Nothing in this package imports Faust or Kafka or reads the environment: it takes typed
configs and plain data, so every piece can be tested in-process.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
