"""YAML text to nodes with marks, refusing while composing what would hang or crash later.

Aliases share nodes, so an alias bomb (`a: &a [x, x, ...]`, `b: &b [*a, *a, ...]`, nine levels)
is a graph of a hundred nodes that only explodes when it is walked into data and validated; and
PyYAML's composer recurses once per level of nesting, so a file nested a thousand levels deep
overflows Python's recursion. The nodes are therefore composed here, from the parser's events,
against two budgets: every node counts the values it stands for (an alias its anchor's whole
subtree) up to MAX_VALUES, and collections nest at most MAX_DEPTH deep. Either ends the
composition at the offending node, before anything large exists or the stack is deep.

The events come from libyaml when PyYAML was built with it: it scans a 200,000-line file in a
fraction of a second where the pure-Python scanner takes many seconds.
"""

from __future__ import annotations

from typing import Protocol, cast

import yaml
from yaml.error import Mark
from yaml.events import (
    AliasEvent,
    CollectionStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

#: A config nests six levels (phases, a phase, its processors, one, its min_share_of, ...).
MAX_DEPTH = 50
#: Scalars, lists and mappings, an alias counting as the whole value it repeats. The bundled demo
#: has about 900; a thousand processors would still fit.
MAX_VALUES = 100_000

KeyPath = tuple[str | int, ...]


class Refused(Exception):
    """A node the composer will not build: where it is (mark, key path) and why."""

    def __init__(self, mark: Mark | None, at: KeyPath, text: str) -> None:
        super().__init__(text)
        self.mark = mark
        self.at = at
        self.text = text


class _Events(Protocol):
    def get_event(self) -> Event | None: ...
    def dispose(self) -> None: ...


def compose(text: str) -> Node | None:
    """The single document of `text` (None if it has none). Raises Refused, or PyYAML's
    MarkedYAMLError for text that is not YAML."""
    parser: _Events = (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)(text)
    try:
        return _Composer(parser).document()
    finally:
        parser.dispose()


def _mark(event: Event) -> Mark:
    # libyaml's marks carry the same line and column (from 0) as PyYAML's own.
    return cast(Mark, event.start_mark)


class _Composer:
    def __init__(self, events: _Events) -> None:
        self._events = events
        self._resolver = Resolver()
        self._anchors: dict[str, Node] = {}
        #: the values each anchor stands for, known once its node is complete
        self._sizes: dict[str, int] = {}
        self._values = 0

    def document(self) -> Node | None:
        self._next()  # the stream starts
        if isinstance(self._next(), StreamEndEvent):
            return None
        root = self._node(self._next(), (), depth=1)
        self._next()  # the document ends
        event = self._next()
        if not isinstance(event, StreamEndEvent):
            raise Refused(_mark(event), (), "a second YAML document starts here; a config is one")
        return root

    def _next(self) -> Event:
        event = self._events.get_event()
        if event is None:  # the parser ends every stream with StreamEndEvent; never reached
            raise Refused(None, (), "the YAML ends unexpectedly")
        return event

    def _node(self, event: Event, at: KeyPath, depth: int) -> Node:
        if isinstance(event, AliasEvent):
            return self._alias(event, at)
        before = self._values
        self._count(event, at, 1)
        if isinstance(event, ScalarEvent):
            node: Node = self._scalar(event)
        elif isinstance(event, SequenceStartEvent | MappingStartEvent):
            node = self._collection(event, at, depth)
        else:
            raise Refused(_mark(event), at, f"unexpected YAML {type(event).__name__}")
        if event.anchor is not None:
            self._sizes[event.anchor] = self._values - before
        return node

    def _alias(self, event: AliasEvent, at: KeyPath) -> Node:
        anchor = event.anchor or ""
        if anchor not in self._anchors:
            raise Refused(_mark(event), at, f"alias *{anchor} comes before any anchor &{anchor}")
        if anchor not in self._sizes:
            raise Refused(_mark(event), at, f"alias *{anchor} is inside the value it repeats")
        self._count(event, at, self._sizes[anchor])
        return self._anchors[anchor]

    def _count(self, event: Event, at: KeyPath, values: int) -> None:
        self._values += values
        if self._values <= MAX_VALUES:
            return
        if isinstance(event, AliasEvent):
            text = (
                f"alias *{event.anchor} repeats {values:,} values, past the {MAX_VALUES:,} "
                "a config may hold (aliases of aliases: an alias bomb?)"
            )
        else:
            text = f"more than {MAX_VALUES:,} values: a config this large is not supported"
        raise Refused(_mark(event), at, text)

    def _resolve(self, kind: type[Node], value: str | None, implicit: object) -> str:
        """The tag YAML implies for an untagged node (`1` an int, `yes` a bool, ...)."""
        tag: str = self._resolver.resolve(kind, value, implicit)  # type: ignore[no-untyped-call]
        return tag

    def _scalar(self, event: ScalarEvent) -> ScalarNode:
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(ScalarNode, event.value, event.implicit)
        node = ScalarNode(tag, event.value, _mark(event), None, style=event.style)
        if event.anchor is not None:
            self._anchors[event.anchor] = node
        return node

    def _collection(self, event: CollectionStartEvent, at: KeyPath, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise Refused(_mark(event), at, f"nested more than {MAX_DEPTH} levels deep")
        kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
        tag = event.tag
        if tag is None or tag == "!":
            tag = self._resolve(kind, None, event.implicit)
        node = kind(tag, [], _mark(event), None, flow_style=event.flow_style)
        if event.anchor is not None:
            # Known from here on, so that an alias inside the node finds it (and is refused).
            self._anchors[event.anchor] = node
            self._sizes.pop(event.anchor, None)
        if isinstance(node, SequenceNode):
            self._fill_sequence(node, at, depth)
        else:
            self._fill_mapping(node, at, depth)
        return node

    def _fill_sequence(self, node: SequenceNode, at: KeyPath, depth: int) -> None:
        while not isinstance(event := self._next(), SequenceEndEvent):
            node.value.append(self._node(event, (*at, len(node.value)), depth + 1))

    def _fill_mapping(self, node: MappingNode, at: KeyPath, depth: int) -> None:
        while not isinstance(event := self._next(), MappingEndEvent):
            key = self._node(event, at, depth + 1)
            part = key.value if isinstance(key, ScalarNode) else "?"
            node.value.append((key, self._node(self._next(), (*at, part), depth + 1)))
