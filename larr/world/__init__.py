"""The simulated food-delivery world (DESIGN section 4): seeded, scalable, semantics learnable from text."""
