"""Venue adapters: one `ExecutionClient` per venue, chosen by `execution.mode`."""
