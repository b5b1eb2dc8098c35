"""The worker's agents; importing this package registers them (and the service) on the app."""

from workers.agents import items, itemstats, runtime, users

__all__ = ["items", "itemstats", "runtime", "users"]
