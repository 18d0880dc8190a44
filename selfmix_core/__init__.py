"""SelfMix Studio core: data, noise, model, losses, selection, trainer, metrics, store.

Imports no Streamlit. Public API is re-exported here as modules land.
"""

__version__ = "0.1.0"
