"""The circuit breaker on agent calls: a run stops when its chat models keep failing.

A single unusable answer (a time-out, a 500 after the transport's retries, JSON in the wrong shape)
is absorbed where it happens: the judge marks that verdict ``failed`` and rejects the record, the
optimizer drops that proposal, and the loop goes on. But an endpoint that is down would turn every
remaining iteration into rejected records and wasted generation, so the rule is:

    **the run stops after ``LoopSettings.max_agent_failures`` (default 8) consecutive unusable
    answers from its agents** (judge, optimizer, instruction compiler together; any usable answer
    resets the count).

The stop raises :class:`AgentsFailing` inside the iteration in flight, so that iteration is never
committed; every finished iteration stays in the run folder, ``state.json`` records status
``failed`` with the reason (the app's run page shows it and offers resume), and ``aod resume``
continues once the endpoint answers again.
"""

from __future__ import annotations

import threading
from typing import Any

from aod_core.errors import InputError

DEFAULT_MAX_FAILURES = 8


class AgentsFailing(InputError):
    """Too many agent answers in a row were unusable; the message says how many and the last reason."""

    def __init__(self, failures: int, last_error: str, spec: str) -> None:
        self.failures, self.last_error, self.spec = failures, last_error, spec
        super().__init__(
            f"stopped after {failures} agent calls in a row failed (circuit breaker); last: {spec}: {last_error}"
        )


class AgentBreaker:
    """Counts consecutive unusable answers across every chat model wrapped with it."""

    def __init__(self, limit: int = DEFAULT_MAX_FAILURES) -> None:
        if limit < 1:
            raise InputError(f"max_agent_failures must be >= 1, got {limit}")
        self.limit = limit
        self.consecutive = 0
        self.total_failures = 0
        self.total_calls = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def wrap(self, chat: Any) -> Any:
        return chat if chat is None or isinstance(chat, GuardedChat) else GuardedChat(chat, self)

    def record(self, replies: list[Any], spec: str) -> None:
        with self._lock:
            for r in replies:
                self.total_calls += 1
                if getattr(r, "ok", True):
                    self.consecutive = 0
                else:
                    self.consecutive += 1
                    self.total_failures += 1
                    self.last_error = str(getattr(r, "error", "unusable answer"))
            tripped = self.consecutive >= self.limit
            failures, last = self.consecutive, self.last_error or ""
        if tripped:
            raise AgentsFailing(failures, last, spec)

    def describe(self) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "consecutive": self.consecutive,
            "failures": self.total_failures,
            "calls": self.total_calls,
            "last_error": self.last_error,
        }


class GuardedChat:
    """A chat model whose answers are counted by an :class:`AgentBreaker`; otherwise the model itself."""

    def __init__(self, chat: Any, breaker: AgentBreaker) -> None:
        self._chat, self._breaker = chat, breaker

    def complete(self, messages: Any, **kwargs: Any) -> Any:
        reply = self._chat.complete(messages, **kwargs)
        self._breaker.record([reply], self.spec)
        return reply

    def complete_many(self, conversations: Any, **kwargs: Any) -> list[Any]:
        replies = self._chat.complete_many(conversations, **kwargs)
        self._breaker.record(list(replies), self.spec)
        return replies

    def __getattr__(self, name: str) -> Any:  # spec, describe(), load(), ...
        return getattr(self._chat, name)
