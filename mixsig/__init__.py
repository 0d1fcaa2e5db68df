"""mixsig: cache encoder embeddings once, iterate on fusion heads, studies and disagreement reports.

The packages (see docs/INTERFACES.md): :mod:`mixsig.cache` (the Zarr feature store), :mod:`mixsig.extract`
(encoders into the cache), :mod:`mixsig.heads` (fusion heads), :mod:`mixsig.studies` (Optuna searches),
:mod:`mixsig.analysis` (disagreement reports) and :mod:`mixsig.demo` (offline demo corpus, tiny encoders).
"""

from mixsig.errors import MixsigError

__version__ = "0.1.0"
__all__ = ["MixsigError", "__version__"]
