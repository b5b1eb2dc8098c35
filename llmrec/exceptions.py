"""The exceptions llmrec raises, in one small hierarchy.

LlmrecError
├── InvalidRecordError   a record breaks the event contract (goes to a dead-letter topic)
├── EncoderError         the encoder cannot encode (bad input text, missing artifact)
│   ├── ModelArtifactError   an exported model is missing, corrupt or fails its gate
│   └── MissingRuntimeError  onnxruntime is not installed (neither llmrec[cpu] nor llmrec[gpu])
├── ItemIndexError       the item index refuses an operation (dimension, capacity, unknown id)
├── BrokerError          the local Kafka broker cannot be started, reached or stopped
├── DatasetError         a dataset file is missing, unreadable or holds no valid record
├── RankerArtifactError  a trained ranker file is missing, corrupt or names unknown features
└── SnapshotError        saved stream statistics are damaged or of an unknown format
"""

from __future__ import annotations

__all__ = [
    "BrokerError",
    "DatasetError",
    "EncoderError",
    "InvalidRecordError",
    "ItemIndexError",
    "LlmrecError",
    "MissingRuntimeError",
    "ModelArtifactError",
    "RankerArtifactError",
    "SnapshotError",
]


class LlmrecError(Exception):
    """Base class of every error llmrec raises on purpose."""


class InvalidRecordError(LlmrecError):
    """A record does not satisfy the event contract; `reason` says why, for the DLQ."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class EncoderError(LlmrecError):
    """The encoder could not turn text into a vector."""


class ModelArtifactError(EncoderError):
    """An exported model artifact is missing, corrupt, or failed its quality gate."""


class MissingRuntimeError(EncoderError):
    """onnxruntime is not installed: the package ships it as an extra, `cpu` or `gpu`."""


class ItemIndexError(LlmrecError):
    """The item index refused an operation."""


class BrokerError(LlmrecError):
    """The local Kafka broker could not be started, reached or stopped."""


class DatasetError(LlmrecError):
    """A dataset cannot be read: a missing file, or a file with no valid record."""


class RankerArtifactError(LlmrecError):
    """A trained ranker file is missing, corrupt, or names features this version lacks."""


class SnapshotError(LlmrecError):
    """Saved stream statistics (`Engine.stats_to_bytes`) are damaged or of an unknown format."""
