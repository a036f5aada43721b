"""The dispatcher's rules as plain functions: which subscription gets which alert, what an answer
means, and when to try again (CONTRACT.md §5). No I/O here, so every rule is tested directly."""

from __future__ import annotations

import email.utils
import random
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}
_WEBHOOK_NS = uuid.UUID("5d0c1f38-6a55-4f39-9d2e-7f0a6b1e9c41")

# What an attempt's outcome does to a message.
DELIVERED = "delivered"
RETRY = "retry"
GONE = "gone"  # 410: the subscriber asks to stop; the subscription is disabled


# Reports under the large-value rule are a reporting duty, not an early warning (CONTRACT.md §5):
# only a subscription that names the typology receives them. In a province they are most alerts.
NAMED_ONLY = frozenset({"large_value"})


class Routed(Protocol):
    """What a filter reads of an alert (an AlertData, or a row of the alerts table)."""

    typology: str
    severity: str
    region: str


def matches(filter_doc: dict[str, Any], alert: Routed) -> bool:
    """Whether an alert passes a subscription's filter: every criterion given must hold, and a
    typology in NAMED_ONLY must be named."""
    typologies = filter_doc.get("typologies") or ()
    if typologies and alert.typology not in typologies:
        return False
    if alert.typology in NAMED_ONLY and alert.typology not in typologies:
        return False
    least = SEVERITY_RANK.get(filter_doc.get("min_severity") or "low", 0)
    if SEVERITY_RANK.get(alert.severity, 0) < least:
        return False
    region = filter_doc.get("region")
    # An alert with no region (an account tied to no institution) reaches only unfiltered
    # subscriptions: it cannot be shown to belong to anyone's region.
    return not region or alert.region.startswith(region)


def webhook_id(subscription_id: str, alert_id: str, revision: int) -> str:
    """One message per subscription and alert revision, the same id however often it is made:
    a dispatcher that re-reads the alerts topic after a crash recognises what it already has."""
    return "msg_" + uuid.uuid5(_WEBHOOK_NS, f"{subscription_id}/{alert_id}/{revision}").hex


def judge(status: int | None, failure: str | None = None) -> tuple[str, str | None]:
    """(what happens next, the failure reason for metrics and the log) for one attempt's end:
    an HTTP status, or no answer with ``failure`` in timeout / connection / refused_url."""
    if status is None:
        return RETRY, failure or "connection"
    if 200 <= status < 300:
        return DELIVERED, None
    if status == 410:
        return GONE, "status_4xx"
    if status == 429:
        return RETRY, "status_429"
    if 300 <= status < 400:  # redirects are not followed: a subscriber must give its final URL
        return RETRY, "status_3xx"
    return RETRY, "status_4xx" if status < 500 else "status_5xx"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter from ``base_s``, each wait at most ``cap_s``, for
    ``window_s`` after the message was made; the last attempt falls at the window's end."""

    base_s: float = 5.0
    window_s: float = 24 * 3600.0
    cap_s: float = 3600.0
    jitter: float = 0.2

    def backoff(self, failures: int, rng: random.Random) -> float:
        plain = min(self.cap_s, self.base_s * 2 ** max(0, failures - 1))
        # Spread retries so that subscribers who failed together do not get retried together.
        return plain * (1.0 + rng.uniform(-self.jitter, self.jitter))

    def next_attempt(
        self,
        created_at: float,
        failures: int,
        now: float,
        rng: random.Random,
        retry_after: float | None = None,
    ) -> float | None:
        """When to try again after ``failures`` failed attempts, or None: give up (dead letter)."""
        deadline = created_at + self.window_s
        if now >= deadline:
            return None
        wait = retry_after if retry_after is not None else self.backoff(failures, rng)
        return min(now + max(0.0, wait), deadline)


# After a rotation the old key keeps signing this long, beside the new one (CONTRACT.md §2).
ROTATION_OVERLAP_S = 24 * 3600.0


def signing_keys(subscription: dict[str, Any], now: float) -> list[str]:
    """The keys a message is signed with now: the current one, and the previous one while its
    overlap lasts."""
    keys = [subscription["secret"]]
    previous = subscription.get("previous_secret")
    if previous and float(subscription.get("previous_expires") or 0) > now:
        keys.append(previous)
    return keys
