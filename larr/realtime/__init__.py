"""The real-time scene state derived from the spec's realtime section: the event schema (events.py) and the
newer-wins per-entity state (state.py).  Core, because the Feast export and the Kafka consumer share it."""
