"""Real-time scene features: Kafka events -> scene-value keys -> Feast online store (push source)."""
