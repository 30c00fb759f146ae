"""Faults a simulator can be switched to while it runs (tests and outage benchmarks)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["HTTP_FAULT_STATUS", "Fault"]


class Fault(StrEnum):
    NONE = "none"
    REFUSE = "refuse"  # the port stops listening: connection refused
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"
    HTTP_401 = "http_401"
    HANG = "hang"  # accept the request, never answer
    DROP_MID_STREAM = "drop_mid_stream"  # start answering, then cut the TCP connection
    SLOW = "slow"  # answer correctly, ``slow_delay_s`` late


HTTP_FAULT_STATUS = {Fault.HTTP_500: 500, Fault.HTTP_429: 429, Fault.HTTP_401: 401}
