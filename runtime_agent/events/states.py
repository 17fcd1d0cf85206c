"""The states of an asynchronous task (FC's names) and the transitions the queue makes.

    Enqueued ──claim──▶ Dequeued ──instance found──▶ Running ──ok──▶ Succeeded
       ▲                   │                          │  ╲──function error, attempts left──▶ Retrying ─┐
       │                   │ past its max age         │   ╲─function error, none left──▶ Failed      │
       │                   ▼                          │    ╲─throttled/system error──▶ Retrying ─────┤
       │                Expired                       ▼                                               │
       │                                            Stopping ──▶ Stopped     (StopAsyncTask)          │
       └──────────────── agent restarted (Dequeued) ◀────────────── due again ◀──────────────────────┘

Enqueued, Retrying and Dequeued tasks that are stopped become Stopped at once (they never run); a task whose
function is gone becomes Invalid. Terminal: Succeeded, Failed, Stopped, Expired, Invalid.
"""

from __future__ import annotations

import enum


class TaskStatus(str, enum.Enum):
    ENQUEUED = "Enqueued"
    DEQUEUED = "Dequeued"
    RUNNING = "Running"
    RETRYING = "Retrying"
    STOPPING = "Stopping"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    STOPPED = "Stopped"
    EXPIRED = "Expired"
    INVALID = "Invalid"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.STOPPED, TaskStatus.EXPIRED,
                      TaskStatus.INVALID})
WAITING = (TaskStatus.ENQUEUED, TaskStatus.RETRYING)  # due for a claim once not_before passes
IN_HAND = (TaskStatus.DEQUEUED, TaskStatus.RUNNING, TaskStatus.STOPPING)  # leased by a worker of one boot
