"""The application layer's unit: an inbound action with its event model, the rows it locks and
the domain rule that applies it. A consumer is a topic plus the actions it accepts there; the
registry of every action lets any consumer apply a parked event when its transaction changes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from operator import or_
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from services.domain.effects import Effects
from services.domain.program import Program
from services.service_layer.decoding import Translate
from services.service_layer.unit_of_work import Needs, UnitOfWork


@dataclass(frozen=True)
class Action:
    model: type[BaseModel]
    needs: Callable[[str, Any], Needs]
    apply: Callable[[UnitOfWork, Program, Any, Effects], None]


class TopicHandler:
    """What a consumer plugs into the pipeline (see ``pipeline.EventHandler``)."""

    def __init__(
        self,
        service: str,
        topic: str,
        actions: frozenset[str],
        registry: Mapping[str, Action],
        translate: Translate | None = None,
    ) -> None:
        self.service = service
        self.topic = topic
        self.actions = actions
        self.registry = registry
        self.translate = translate
        union = reduce(or_, [registry[name].model for name in sorted(actions)])
        tagged: Any = Annotated[union, Field(discriminator="action")]
        self.adapter: TypeAdapter[Any] = TypeAdapter(tagged)
