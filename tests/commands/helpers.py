"""Shared by the CLI tests."""

#: Libraries that `mixsig --help`, `mixsig COMMAND --help` and `mixsig validate` must not import.
HEAVY = ("numpy", "zarr", "torch", "optuna", "matplotlib", "transformers", "lightgbm", "sklearn", "scipy", "av",
         "h5py")
