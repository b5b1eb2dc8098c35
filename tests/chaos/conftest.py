"""The chaos tier: real broker, real worker processes, and the failures an operator sees.

`make chaos` runs it. Each test builds its own worker (`make_pipeline`, from the end-to-end
tier's conftest) with fresh topics and state.
"""

from tests.e2e.conftest import make_pipeline

__all__ = ["make_pipeline"]  # the fixture, for this tier's tests
