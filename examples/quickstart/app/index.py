import json


def handler(event, context):
    name = json.loads(event or b"{}").get("name", "world")
    return f"Hello, {name}! (from {context.function.name}, request {context.request_id})"
