"""metantk-plugin: the MetaNTK zero-cost proxy and MetaNTK-NAS for NAS toolkits."""

__version__ = "0.1.0"
__all__ = ["__version__", "read_scores"]


def __getattr__(name):
    # lazy, so that importing the package does not pull in h5py and pandas
    if name == "read_scores":
        from metantk_plugin.scoring.store import read_scores

        return read_scores
    raise AttributeError(f"module 'metantk_plugin' has no attribute {name!r}")
