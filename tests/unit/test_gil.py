"""The interpreter lock's switch interval of FundWatch's processes (services/gil.py)."""

from __future__ import annotations

import sys

from services.gil import SWITCH_INTERVAL_S, hand_over_often


def test_a_process_hands_the_lock_over_after_one_millisecond():
    before = sys.getswitchinterval()
    try:
        hand_over_often()
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S == 0.001
    finally:
        sys.setswitchinterval(before)
