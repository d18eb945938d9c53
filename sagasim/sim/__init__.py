"""What it looks like under load: SimPy runs driven by the compiled transition table.

:mod:`~sagasim.sim.orchestration` and :mod:`~sagasim.sim.choreography` run chunks of instances
(an orchestrator, or services over a broker); :func:`simulate` splits the runs into seeded
chunks and merges what they measured into :class:`Results`; :mod:`~sagasim.sim.traces` writes
traced instances for Perfetto.
"""

from .results import Results
from .run import DEFAULT_CHUNK_SIZE, simulate, simulate_instance

__all__ = ["DEFAULT_CHUNK_SIZE", "Results", "simulate", "simulate_instance"]
