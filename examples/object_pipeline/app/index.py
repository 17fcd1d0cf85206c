"""Invoked by an OSS trigger for each new object under incoming/: reads it with boto3 and writes a derived object
(its text upper-cased) under derived/. The trigger's filter keeps derived/ out, so the function never feeds itself."""

import json
import os

import boto3
from botocore.config import Config

s3 = boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["S3_ACCESS_KEY"], aws_secret_access_key=os.environ["S3_SECRET_KEY"],
                  config=Config(s3={"addressing_style": "path"}))


def handler(event, context):
    done = []
    for record in json.loads(event)["events"]:
        bucket, key = record["oss"]["bucket"]["name"], record["oss"]["object"]["key"]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        derived = "derived/" + key.removeprefix("incoming/") + ".upper"
        s3.put_object(Bucket=bucket, Key=derived, Body=body.decode("utf-8", "replace").upper().encode())
        print(f"{record['eventName']} {key} -> {derived}")
        done.append(derived)
    return {"written": done}
