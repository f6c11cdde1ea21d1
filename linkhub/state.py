"""What every handler of one running server shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from .config import Settings
from .db import Database
from .metrics import Metrics


@dataclass
class State:
    settings: Settings
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
