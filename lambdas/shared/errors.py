"""Named errors: the contract between the Lambdas and the state machine.

The Python Lambda runtime reports an unhandled exception's class name as
``errorType``; Step Functions matches Retry and Catch on that name. So the class
names below are part of the public contract and must not be renamed lightly.
"""

from __future__ import annotations


class NotiflowError(Exception):
    """Base of every error Notiflow raises on purpose."""


class RetryableError(NotiflowError):
    """A later attempt may succeed; the workflow retries it with back-off."""


class PermanentError(NotiflowError):
    """Retrying cannot help; the workflow records the failure at once."""


class InvalidNotificationError(PermanentError):
    """The message breaks the notification contract; the run ends REJECTED."""


class DeliveryRetryableError(RetryableError):
    """The endpoint failed in a way worth retrying (5xx, 408, 429, timeout, connection)."""


class DeliveryThrottledError(DeliveryRetryableError):
    """The endpoint asked us to come back later (Retry-After); the workflow waits as asked."""


class DeliveryPermanentError(PermanentError):
    """The endpoint refused the notification for good (other 4xx, blocked target)."""


class DeliveryFailedError(PermanentError):
    """Delivery ended on an error outside the delivery contract (e.g. a Lambda timeout)."""


class StorageError(RetryableError):
    """DynamoDB could not be reached or throttled the request."""


class HostBusyError(RetryableError):
    """The target host already has its limit of deliveries in flight; nothing was sent.

    Not a delivery attempt: the workflow waits in its own Retry (no compute) whose counter is
    separate from the delivery retry budget, then tries again.
    """


RETRYABLE_DELIVERY_ERRORS: tuple[str, ...] = (DeliveryRetryableError.__name__,)
DELIVERY_ERRORS: tuple[str, ...] = (DeliveryRetryableError.__name__, DeliveryPermanentError.__name__)
