"""How likely it is: the explored state space as an absorbing Markov chain, solved exactly.

:mod:`~sagasim.analysis.chain` builds and solves the chain (sparse LU); :func:`analyze` reads
outcome probabilities, the compensation probability, expected latencies and the sensitivity
ranking from it.
"""

from .exact import Analysis, Sensitivity, analyze

__all__ = ["Analysis", "Sensitivity", "analyze"]
