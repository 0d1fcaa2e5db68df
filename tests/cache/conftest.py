import pytest

from mixsig.cache import create_store
from tests.cache.helpers import make_samples


@pytest.fixture
def store(tmp_path):
    return create_store(tmp_path / "store.zarr", make_samples(), attrs={"manifest_sha256": "x"})
