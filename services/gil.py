"""How soon Python hands the interpreter lock from a busy thread to a waiting one, in processes
whose storage calls run on a thread beside a busy event loop (the gateway's and the worker's
chDB; clickhouse-driver's socket reads; Faust's Kafka consumer thread in the worker).

A thread waiting for the lock gets it once the running thread has held it for the switch interval
(Python's default 5 ms). A chDB call takes the lock several times, and waited that long each
time: beside a thread running Python without pause, ``SELECT 1`` took 7-12 ms instead of 1, and an
outbox insert of 1.1 MB 38-55 ms instead of about 10. The gateway answers a batch only once its
ClickHouse write is done, so that wall time, not chDB's CPU, was most of a batch's wait: in a
bench run's push phase its main thread was busy 72 % of the time, chDB's own threads about 20 %,
and each group-commit round took 50-116 ms. With a 1 ms interval the same insert took 17-30 ms,
the busy thread kept 70-90 % of its pace as before, and the bench's gateway_rps in three pairs
went from 46,968, 43,275 and 46,190 records a second to 51,982, 46,674 and 59,671 (the worker's
backlog rate did not move beyond the machine's noise).
"""

from __future__ import annotations

import sys

SWITCH_INTERVAL_S = 0.001


def hand_over_often() -> None:
    """Let a thread waiting for the interpreter lock have it after 1 ms of another's work."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
