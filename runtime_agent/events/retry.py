"""FC's retry policy for asynchronous invocations, as one object that turns an attempt's outcome into the task's
next step.

- A function error (the handler raised, timed out, or its process died) is retried up to
  ``max_async_retry_attempts`` times (0-8, default 3), 1 s after the first failure, then 2 s, 4 s ... capped at
  60 s (FC does not document its interval; Lambda waits 1 and 2 minutes, too slow for task functions here).
- Throttling (no instance slot) and system errors (an instance that could not start, the agent restarting mid-run)
  are not the function's fault: they are not charged to the attempts and are retried with binary exponential
  backoff, 0.5 s, 1, 2, 4 ... capped at 5 minutes, for as long as the event is younger than its maximum age.
- An event older than ``max_async_event_age_in_seconds`` is not run: it ends Expired.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

FUNCTION_RETRY_BASE_S = 1.0
FUNCTION_RETRY_CAP_S = 60.0
SYSTEM_RETRY_BASE_S = 0.5
SYSTEM_RETRY_CAP_S = 300.0


class Outcome(str, enum.Enum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    THROTTLED = "throttled"
    SYSTEM_ERROR = "system_error"
    GONE = "gone"  # the function no longer exists on this host


class Step(str, enum.Enum):
    SUCCEED = "succeed"
    RETRY = "retry"
    FAIL = "fail"
    EXPIRE = "expire"
    INVALID = "invalid"


@dataclass(frozen=True)
class Decision:
    step: Step
    delay_s: float = 0.0
    charged: bool = False  # a function-error retry, counted against max_async_retry_attempts


@dataclass(frozen=True)
class RetryPolicy:
    def decide(self, outcome: Outcome, *, function_errors: int, max_retries: int, system_retries: int,
               now_ms: int, deadline_ms: int) -> Decision:
        """``function_errors`` and ``system_retries`` count the failures before this one."""
        if outcome is Outcome.SUCCESS:
            return Decision(Step.SUCCEED)
        if outcome is Outcome.GONE:
            return Decision(Step.INVALID)
        if outcome is Outcome.FUNCTION_ERROR:
            if function_errors >= max_retries:
                return Decision(Step.FAIL)
            delay = min(FUNCTION_RETRY_BASE_S * 2 ** function_errors, FUNCTION_RETRY_CAP_S)
            if now_ms + delay * 1000 >= deadline_ms:
                return Decision(Step.FAIL)  # the retry would run past the event's age: the error stands
            return Decision(Step.RETRY, delay, charged=True)
        delay = min(SYSTEM_RETRY_BASE_S * 2 ** system_retries, SYSTEM_RETRY_CAP_S)
        if now_ms + delay * 1000 >= deadline_ms:
            return Decision(Step.EXPIRE)
        return Decision(Step.RETRY, delay)
