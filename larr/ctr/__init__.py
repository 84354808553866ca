"""Stage 3 (paper 3.3): the CTR model's input pipeline (more to come: PLE, the LARR scene encoder, baselines)."""
