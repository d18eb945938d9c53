"""How likely it is: the explored state space as an absorbing Markov chain, solved exactly.

:mod:`~sagasim.analysis.chain` builds and solves the chain (sparse LU); :func:`analyze` reads
outcome probabilities, the compensation probability, expected latencies and the sensitivity
ranking from it; :mod:`~sagasim.analysis.crashes` does the same for a coordinator that crashes
(:func:`crash_effects`).
"""

from .crashes import CrashEffects, crash_effects
from .exact import Analysis, Sensitivity, analyze

__all__ = ["Analysis", "CrashEffects", "Sensitivity", "analyze", "crash_effects"]
