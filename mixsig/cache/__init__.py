"""The Zarr feature store: samples table, provenance keys, resumable writer, reader, verify, HDF5 exchange, runs.

Example::

    from mixsig.cache import open_store
    store = open_store("cache.zarr")
    view = store.read("text.roberta-base.cls.3f9a1c0d2b7e", split="train")   # view.X: [n, 768] float32
"""

from mixsig.cache._h5 import export_h5, import_h5
from mixsig.cache._keys import (FEATURE_FORMAT_VERSION, Provenance, canonical_json, diff_dicts, file_sha256, sha256_of,
                               short_name)
from mixsig.cache._import_runs import delete_run, import_run, list_runs, run_attrs
from mixsig.cache._runs import (UNSET, Run, RunRecord, RunSubset, Unset, describe_collapse, subset_metrics,
                                subset_name, describe_in_sample, in_sample_keys, library_versions,
                                check_modality_name, check_run_name)
from mixsig.cache._samples import MODALITIES, Samples
from mixsig.cache._status import Status
from mixsig.cache._create import create_store, open_store, store_state
from mixsig.cache._dims import STATE_DIR, state_dir
from mixsig.cache._lease import check_lease_free, leased_keys
from mixsig.cache._update import SamplesUpdate, affected_rows, describe_samples_diff, diff_samples, update_samples
from mixsig.cache._store import FeatureStore, FeatureView, default_chunk_rows, describe_group_leak
from mixsig.cache._stream import Batch, forget_verified, iter_batches
from mixsig.cache._verify import VerifyReport, verify_store
from mixsig.cache._writer import FeatureWriter

__all__ = [
    "FEATURE_FORMAT_VERSION", "MODALITIES", "UNSET", "FeatureStore", "FeatureView", "FeatureWriter", "Provenance",
    "Run", "RunRecord", "RunSubset", "Samples", "Status", "Unset", "VerifyReport", "canonical_json", "file_sha256", "create_store",
    "default_chunk_rows", "describe_collapse", "describe_group_leak", "diff_dicts", "export_h5", "import_h5", "open_store", "sha256_of",
    "short_name", "subset_metrics", "subset_name", "verify_store",
    "SamplesUpdate", "affected_rows", "check_lease_free", "describe_samples_diff", "diff_samples", "leased_keys",
    "store_state", "update_samples", "describe_in_sample", "in_sample_keys", "library_versions",
    "delete_run", "import_run", "list_runs", "run_attrs",
    "check_modality_name", "check_run_name",
    "STATE_DIR", "state_dir",
    "Batch", "forget_verified", "iter_batches",
]
