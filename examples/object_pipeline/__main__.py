"""An object pipeline: each object put under incoming/ of a bucket on an S3-compatible server invokes a function
(FC's OSS trigger) that writes a derived object under derived/.

    pulumi config set s3Endpoint http://10.0.0.5:7070 && pulumi config set bucket uploads
    pulumi config set s3AccessKey ... && pulumi config set --secret s3SecretKey ...
    pulumi up
    # point the server's webhook at the trigger (versitygw: --event-webhook-url "$(pulumi stack output
    # webhook_url --show-secrets)"); without it the bucket listing still delivers every event, within
    # reconcile_seconds.

boto3 is vendored into the code package from the environment this program runs in (S3's model only: botocore's
other services' models are left out).
"""

import importlib.util
import shutil
from pathlib import Path

import pulumi

import fc_provider as fc

VENDORED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3")
BOTOCORE_DATA = ("s3", "_retry.json", "endpoints.json", "partitions.json", "sdk-default-configuration.json")

config = pulumi.Config()
here = Path(__file__).resolve().parent
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))


def vendor() -> Path:
    """boto3 and its dependencies copied into .vendor/ (botocore with S3's model only: 2 MB, not 30)."""
    target = here / ".vendor"
    shutil.rmtree(target, ignore_errors=True)
    for name in VENDORED:
        spec = importlib.util.find_spec(name)
        source = Path(next(iter(spec.submodule_search_locations)))
        ignore = shutil.ignore_patterns("__pycache__")
        if name == "botocore":
            def ignore(folder, names, _default=ignore):  # noqa: E306 - keep only S3's data
                skipped = set(_default(folder, names))
                if Path(folder) == source / "data":
                    skipped |= {n for n in names if n not in BOTOCORE_DATA}
                return skipped
        shutil.copytree(source, target / name, ignore=ignore)
    six = importlib.util.find_spec("six")
    shutil.copy(six.origin, target / "six.py")
    return target


code = pulumi.AssetArchive({
    "index.py": pulumi.FileAsset(str(here / "app" / "index.py")),
    "vendor": pulumi.FileArchive(str(vendor())),
})
endpoint = config.require("s3Endpoint")
bucket = config.get("bucket") or "uploads"
access_key = config.require("s3AccessKey")
secret_key = config.require_secret("s3SecretKey")

pipeline = fc.Function(
    "pipeline",
    fc.FunctionArgs(function_name="object-pipeline", code=code, handler="index.handler", timeout=30,
                    memory_size=256,
                    environment_variables={"PYTHONPATH": "/code/vendor", "S3_ENDPOINT": endpoint,
                                           "S3_ACCESS_KEY": access_key, "S3_SECRET_KEY": secret_key},
                    description="Writes derived/<key>.upper for every object put under incoming/"),
    fleet=fleet,
)

trigger = fc.Trigger("incoming", fc.TriggerArgs(
    function=pipeline,
    trigger_type="oss",
    trigger_config=fc.OssTriggerConfigArgs(events=["oss:ObjectCreated:*"],
                                           filter=fc.OssTriggerConfigArgs.key_filter(prefix="incoming/")),
    source=fc.OssSourceArgs(endpoint=endpoint, bucket=bucket, access_key_id=access_key,
                            secret_access_key=secret_key,
                            reconcile_seconds=config.get_float("reconcileSeconds") or 10),
))

pulumi.export("trigger_id", trigger.trigger_id)
pulumi.export("webhook_url", trigger.oss_webhook_url)
