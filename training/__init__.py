"""Training entry points: the default backbone, stage 1 (CPT), stage 2 (contrastive), the LLM report.

Each module has ``run(...)`` (called by ``larr train ...``) and ``main()`` so that it can be
launched with ``deepspeed``/``torchrun`` on GPUs; see ``training/README.md``.
"""
