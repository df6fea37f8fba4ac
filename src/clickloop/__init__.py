"""clickloop: Generative Explore-Exploit (Senel et al., ACL 2024) as a library, a simulator and a CLI.

An LLM writes a small pool of items per context; users (simulated here) click; an LLM optimizer reads
the items with their CTRs and writes the next pool. Start with ``clickloop demo`` or
:func:`clickloop.experiment.runner.run_experiment`.
"""

from clickloop.core.items import Item, ItemOrigin, ItemRecord, ItemStats, Provenance
from clickloop.core.personas import Persona, Population
from clickloop.core.pool import Context, ContextState
from clickloop.domains import Domain, load_domain
from clickloop.errors import (
    ClickloopError,
    ConfigurationError,
    ConflictError,
    LLMError,
    ModelError,
    NotFoundError,
    ParseError,
    StorageError,
    UnknownIdError,
    ValidationError,
)
from clickloop.simulator.click_model import ClickModel, SimulationResult, simulate, theoretical_ctr
from clickloop.strategies import STRATEGIES, ItemWriter, make_strategy

__all__ = [
    "STRATEGIES",
    "ClickModel",
    "ClickloopError",
    "ConfigurationError",
    "ConflictError",
    "Context",
    "ContextState",
    "Domain",
    "Item",
    "ItemOrigin",
    "ItemRecord",
    "ItemStats",
    "ItemWriter",
    "LLMError",
    "ModelError",
    "NotFoundError",
    "ParseError",
    "Persona",
    "Population",
    "Provenance",
    "SimulationResult",
    "StorageError",
    "UnknownIdError",
    "ValidationError",
    "load_domain",
    "make_strategy",
    "simulate",
    "theoretical_ctr",
]
