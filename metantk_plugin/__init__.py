"""metantk-plugin: the MetaNTK zero-cost proxy and MetaNTK-NAS for NAS toolkits."""

__version__ = "0.1.0"
