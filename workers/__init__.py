"""The process edge of llmrec: settings, CLI, the local Kafka broker, and the Faust app."""
