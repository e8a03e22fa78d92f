"""The value every layer of the crisis net returns."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("none", "concern", "crisis")  # in rising order of worry


@dataclass(frozen=True)
class Assessment:
    """How worried to be about one of the person's turns, and why.

    ``category`` names what was heard: for a crisis, a step of the Columbia
    Suicide Severity Rating Scale (``wish_dead``, ``ideation``, ``method``,
    ``intent``, ``plan``, ``preparatory``, ``self_harm``, ``goodbye``,
    ``means``, ``attempt``); for a concern, what it was (``hopelessness``,
    ``burden``, ``past_self_harm``...). ``layer`` names the layer that
    decided: ``rules``, ``semantic``, ``judge`` or ``context``.
    """

    level: str  # "none", "concern" or "crisis"
    reasons: tuple[str, ...] = ()
    category: str = ""
    layer: str = ""

    @property
    def crisis(self) -> bool:
        return self.level == "crisis"

    @property
    def concern(self) -> bool:
        return self.level == "concern"

    def as_dict(self) -> dict:
        return {"level": self.level, "category": self.category, "reasons": list(self.reasons), "layer": self.layer}

