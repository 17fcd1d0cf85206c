"""Runs on every tick of its timer trigger: FC's timer event is {"triggerTime", "triggerName", "payload"}."""

import json


def handler(event, context):
    tick = json.loads(event)
    print(f"tick {tick['triggerTime']} from {tick['triggerName']}: {tick['payload']}")
    return {"handled": tick["triggerTime"]}
