"""sagasim: model, check and simulate sagas."""

from .exceptions import SagaDefinitionError, SagaSimError
from .model import Saga

__version__ = "0.1.0"
__all__ = ["Saga", "SagaDefinitionError", "SagaSimError", "__version__"]
