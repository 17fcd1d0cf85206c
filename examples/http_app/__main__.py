"""A Flask site behind an anonymous HTTP trigger: forms, a cookie session, redirects, uploads.

Flask and gunicorn are vendored into the code package from the environment this program runs in (pip install
flask gunicorn there; the project's test extra has them), so hosts need no package index.

    pulumi up
    curl -H "Host: $(pulumi stack output host)" http://<a host's address>:9000/      # by host name
    curl $(pulumi stack output url_intranet)                                            # by path, no DNS needed
"""

import importlib.util
from pathlib import Path

import pulumi

import fc_provider as fc

VENDORED = ("flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "click", "blinker", "gunicorn",
            "packaging")

config = pulumi.Config()
here = Path(__file__).resolve().parent
fleet = fc.Fleet("fleet", fc.FleetArgs.from_fleet_file(config.get("fleetFile") or "/var/lib/fc-lab/fleet.json"))


def _package(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is not installed where this program runs: pip install flask gunicorn")
    return next(iter(spec.submodule_search_locations))


code = pulumi.AssetArchive({
    "app.py": pulumi.FileAsset(str(here / "app" / "app.py")),
    "templates": pulumi.FileArchive(str(here / "app" / "templates")),
    **{f"vendor/{name}": pulumi.FileArchive(_package(name)) for name in VENDORED},
})

site = fc.Function(
    "http-app",
    fc.FunctionArgs(
        function_name="http-app",
        runtime="custom.debian12",
        code=code,
        custom_runtime_config=fc.CustomRuntimeConfigArgs(
            command=["python3", "-m", "gunicorn"],
            # one worker: the example keeps its notes in memory; threads serve requests concurrently
            args=["--bind", "0.0.0.0:9000", "--workers", "1", "--threads", "8", "--worker-tmp-dir", "/tmp",
                  "--access-logfile", "-", "app:app"],
            port=9000),
        environment_variables={"PYTHONPATH": "/code/vendor", "SECRET_KEY": config.get_secret("secretKey")
                               or "example-only-secret"},
        instance_concurrency=8,
        max_instances=1,
        memory_size=256,
        timeout=30,
        description="A Flask site served by gunicorn",
    ),
    fleet=fleet,
)

trigger = fc.Trigger("site", fc.TriggerArgs(
    function=site,
    trigger_type="http",
    trigger_config=fc.HttpTriggerConfigArgs(auth_type="anonymous",
                                            methods=["GET", "POST", "PUT", "DELETE", "HEAD"]),
    description="The site's public URL",
))

pulumi.export("trigger_id", trigger.trigger_id)
pulumi.export("url_internet", trigger.http_trigger.apply(lambda h: h["url_internet"]))
pulumi.export("url_intranet", trigger.http_trigger.apply(lambda h: h["url_intranet"]))
pulumi.export("host", trigger.http_trigger.apply(lambda h: h["url_internet"].split("//")[1].split("/")[0]))
