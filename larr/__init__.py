"""larr: LLM-aided real-time scene recommendation, as a feature platform.

The shared core lives here: config, feature schema and data contract, the one
text renderer, the simulator, metrics and the ``larr`` CLI.
"""

__version__ = "0.1.0"
