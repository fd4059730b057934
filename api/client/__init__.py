"""A worker's side of the wire: the typed intake client, the durable outbox, backoff.

Owns `IntakeClient` (`intake`), the on-disk outbox that delivers reports exactly once across
crashes and outages (`outbox`) and capped exponential backoff (`backoff`, also what RTSP
reconnects wait by). Imports only `api.contract` of ours, and nothing of the server's stack.
"""

from api.client.backoff import Backoff
from api.client.intake import IntakeClient, IntakeError, RejectedError, RetryableError
from api.client.outbox import Deliverer, Outbox, OutboxError

__all__ = [
    "Backoff",
    "Deliverer",
    "IntakeClient",
    "IntakeError",
    "Outbox",
    "OutboxError",
    "RejectedError",
    "RetryableError",
]
