"""The CLI keeps libraries' INFO chatter (S3 credentials found, endpoints) off stderr, at any mixsig log level."""

import logging

import pytest

from mixsig.cli import main


@pytest.mark.parametrize("flags", [[], ["-q"]])
def test_s3_libraries_are_held_at_warning(tmp_path, flags):
    main([*flags, "runs", "ls", str(tmp_path / "missing.zarr")])   # any command: the levels are set before it runs
    for name in ("botocore", "aiobotocore", "s3fs", "boto3"):
        assert logging.getLogger(name).level >= logging.WARNING, name
