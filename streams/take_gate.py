"""When a take's states may go to the changelog: not before the take's alerts are out.

A worker recognises a message it has folded by its id in the account's state, and skips it when
it comes again. So a state must not reach the changelog ahead of the alerts its take raised: a
worker killed in between would come back with the state, skip the redelivered messages, and the
alerts they raised would never be written or sent. A take changes its states first and emits its
alerts after (a ClickHouse insert and the alerts topic, tens of milliseconds), and the consumer's
commit (streams/app.py, CommitHook) may start in that time.

So a commit that starts while a take is between its first state change and its alerts out does
not write the states then: it gets a future that the take resolves once its alerts are out,
writing the states at that moment, before anything else can change them. The commit waits for
that future with the producer's unacknowledged messages (streams/transport.py), before it
commits any offset. The take's own offsets are not in that commit (a take's messages are
acknowledged once it is done), so the states written are never older than what is committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType


class TakeGate:
    def __init__(self, write_states: Callable[[], int]) -> None:
        self._write_states = write_states
        self._open = False  # a take has changed states whose alerts are not out yet
        self._deferred: asyncio.Future[int] | None = None

    def __enter__(self) -> TakeGate:
        """``with gate:`` around a take's state changes and its alerts' way out."""
        self.begin()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.end(error)

    def begin(self) -> None:
        """A take is about to change states."""
        self._open = True

    def end(self, error: BaseException | None = None) -> None:
        """The take's alerts are out (or it failed with ``error``): a write a commit asked for
        meanwhile happens now, or fails the commit with the take's error."""
        self._open = False
        deferred, self._deferred = self._deferred, None
        if deferred is None or deferred.done():
            return
        if error is not None:
            deferred.set_exception(error)
        else:
            deferred.set_result(self._write_states())

    def write_or_defer(self) -> asyncio.Future[int] | int:
        """For a commit starting: the states written now (their count), or a future of that
        count once the take under way has its alerts out."""
        if not self._open:
            return self._write_states()
        if self._deferred is None:
            self._deferred = asyncio.get_running_loop().create_future()
        return self._deferred
