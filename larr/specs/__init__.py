"""Shipped feature specs (YAML): food_delivery (the default), app_usage, and the `larr init` template."""
