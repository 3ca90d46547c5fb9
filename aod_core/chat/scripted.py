"""A chat model that plays back canned answers, for unit tests of the agents.

It goes through the same validate/retry loop as the real backends, so a test can script "invalid,
then valid" and see the agent get a retried, validated answer — or an error reply.
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable

from aod_core.chat.base import DEFAULT_RETRIES, BatchChat, ChatReply, Conversation, RawAnswer, complete_with_retries

Script = list[Any] | Callable[[Conversation], Any]


class ScriptedChatModel(BatchChat):
    """Answers from a list (in order, across calls and retries) or from a function of the messages.

    A scripted answer that is not a string (a dict, a list) is sent as its JSON text, so tests can
    write ``{"verdict": "accept", ...}`` directly. Every request is recorded in ``conversations``
    (one entry per attempt) and ``calls`` (with the settings it was made with).
    """

    spec = "scripted"

    def __init__(self, responses: Script, *, retries: int = DEFAULT_RETRIES) -> None:
        self._script = responses if callable(responses) else list(responses)
        self.retries = retries
        self.conversations: list[Conversation] = []
        self.calls: list[dict[str, Any]] = []
        self._next = 0
        self._lock = threading.Lock()  # agents may share one instance between threads

    def _answer(self, messages: Conversation) -> str:
        with self._lock:
            self.conversations.append([dict(m) for m in messages])
            if callable(self._script):
                out = self._script(messages)
            else:
                if self._next >= len(self._script):
                    # A test that runs out has a wrong script; failing loudly beats an error reply
                    # that the agent under test would quietly absorb.
                    raise RuntimeError(f"ScriptedChatModel ran out of responses after {len(self._script)}")
                out = self._script[self._next]
                self._next += 1
        return out if isinstance(out, str) else json.dumps(out)

    def _generate(self, conversations: list[Conversation], temperature: float, seed: int | None) -> list[RawAnswer]:
        self.calls.append({"n": len(conversations), "temperature": temperature, "seed": seed})
        return [RawAnswer(text=self._answer(c)) for c in conversations]

    def complete_many(
        self, conversations, *, json_schema=None, max_tokens=256, temperature=0.0, seed=None
    ) -> list[ChatReply]:
        # the ChatModel protocol's signature (chat/base.py)
        return complete_with_retries(
            self._generate,
            conversations,
            json_schema=json_schema,
            temperature=temperature,
            seed=seed,
            retries=self.retries,
        )

    @property
    def remaining(self) -> int | None:
        """Scripted answers not used yet (None for a function script)."""
        return None if callable(self._script) else len(self._script) - self._next

    def describe(self) -> dict:
        return {
            "backend": "scripted",
            "spec": self.spec,
            "responses": "function" if callable(self._script) else len(self._script),
        }

    def __repr__(self) -> str:
        return f"ScriptedChatModel(used={len(self.conversations)}, remaining={self.remaining})"
