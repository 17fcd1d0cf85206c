"""A real S3-compatible server for the OSS-trigger tests: versitygw (built once by scripts/build-versitygw.sh into
~/.cache/fc-provider), serving a posix folder on the lab bridge's address, so lab hosts reach it and it reaches
their agents' webhook."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parents[1]
ACCESS_KEY, SECRET_KEY = "fc-test-access", "fc-test-secret-key-0123456789"


def versitygw_binary() -> str:
    out = subprocess.run(["bash", str(REPO / "scripts" / "build-versitygw.sh")], capture_output=True, text=True,
                         timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"building versitygw failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self, address: str, folder: Path) -> None:
        self.address = address
        self.port = _free_port(address)
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        self.binary = versitygw_binary()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.address}:{self.port}"

    def source(self, bucket: str, **extra: object) -> dict:
        return {"endpoint": self.endpoint, "bucket": bucket, "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY, **extra}

    def start(self, webhook: str | None = None) -> None:
        argv = [self.binary, "--access", ACCESS_KEY, "--secret", SECRET_KEY, "--port", f"{self.address}:{self.port}"]
        if webhook:
            argv += ["--event-webhook-url", webhook]
        log = (self.folder / "versitygw.log").open("ab")
        self.proc = subprocess.Popen([*argv, "posix", str(self.folder / "data")], stdout=log, stderr=log)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client().list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - still starting
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"versitygw did not start: {exc}\n"
                                       f"{(self.folder / 'versitygw.log').read_text()[-2000:]}") from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY,
                            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
