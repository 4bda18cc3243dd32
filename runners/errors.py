"""The two ways a call between components fails, the same on both runners."""


class ActorLost(RuntimeError):
    """A component died (its process, its node) or was killed before it answered."""


class AnswerTimeout(TimeoutError):
    """A `get` whose answer did not come in time."""
