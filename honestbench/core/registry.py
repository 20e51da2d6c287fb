"""One generic name -> factory registry (attacks, backbones, defence layers, diagnostics use it) and the
"did you mean" suggestion every unknown-name error shares."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from honestbench.core.errors import BenchError

T = TypeVar("T")


def suggest(name: str, choices: list[str] | tuple[str, ...], cutoff: float = 0.6) -> str:
    """`` (did you mean 'x'?)`` for the closest choice when it is close (difflib ratio >= ``cutoff``), else an
    empty string."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=cutoff)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names it in errors, e.g. 'attack'), registered by decorator::

        BACKBONES = Registry("backbone")

        @BACKBONES.register("small-cnn")
        class SmallCNN(nn.Module): ...

    ``error`` is the :class:`BenchError` subclass raised for an unknown name; ``hint`` ends that message
    (e.g. "see `bench list attacks`"); ``discover`` is called once before the first lookup (it imports the
    modules whose decorators fill the registry).
    """

    def __init__(self, kind: str, error: type[BenchError] = BenchError, hint: str = "",
                 discover: Callable[[], None] | None = None):
        self.kind = kind
        self.error = error
        self.hint = hint
        self._discover = discover
        self._discovered = discover is None
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering its argument under ``name`` (a name registered twice is a programming
        error: ValueError)."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._entries[name] = obj

    def _ensure(self) -> None:
        if not self._discovered:
            self._discovered = True
            assert self._discover is not None
            self._discover()

    def get(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises ``self.error`` with the closest suggestion."""
        self._ensure()
        if name not in self._entries:
            hint = f"; {self.hint}" if self.hint else ""
            raise self.error(f"unknown {self.kind} {name!r}{suggest(name, list(self._entries))}{hint}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a shell-style pattern, sorted."""
        self._ensure()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def items(self) -> Iterator[tuple[str, T]]:
        """``(name, entry)`` pairs in registration order."""
        self._ensure()
        return iter(list(self._entries.items()))
