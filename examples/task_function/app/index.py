"""A batch job: processes ``items`` items of ``seconds_per_item`` seconds each and reports progress in its log.

Submitted asynchronously with a task id, it runs for minutes; the task's state, events and result are queried
and it can be stopped from the CLI (``fc tasks``) or the official SDK (ListAsyncTasks, GetAsyncTask,
StopAsyncTask)."""

import json
import time


def handler(event, context):
    job = json.loads(event or b"{}")
    items = int(job.get("items", 120))
    pause = float(job.get("seconds_per_item", 1))
    total = 0
    for n in range(items):
        time.sleep(pause)  # stands for the real work on one item (a frame, a row, a file)
        total += n
        if n % 10 == 0:
            print(f"task {context.request_id}: item {n + 1}/{items}")
    return json.dumps({"items": items, "checksum": total})
