"""A local S3-compatible server for the object-storage tests: moto's server mode on 127.0.0.1 (a free port),
with the standard AWS variables pointed at it while it runs. Tests skip, naming what to install, without moto."""

from __future__ import annotations

import contextlib
import logging
import os
import uuid

import pytest

_VARS = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def _clear_fs_cache() -> None:
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # instances keep the endpoint they were made with


@contextlib.contextmanager
def s3_server():
    """Start moto's S3 server, set AWS_* for this process (and its children), make a bucket; yields
    ``(bucket url "s3://<bucket>", env dict)``."""
    server = pytest.importorskip("moto.server", reason="moto[server] is not installed (pip install "
                                 "'moto[server]', part of the test extra): the s3:// store tests need its local S3 server")
    pytest.importorskip("s3fs", reason="s3fs is not installed (pip install 's3fs', part of the test extra)")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    srv = server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in _VARS}
    os.environ.update(env)
    _clear_fs_cache()
    try:
        import s3fs

        bucket = f"mixsig-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem().mkdir(bucket)
        yield f"s3://{bucket}", env
    finally:
        _clear_fs_cache()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        srv.stop()
