"""LLM stages 1-2 (paper 3.1-3.2): backbone, tokenizer, CPT data, contrastive loss, the encoder artefact."""
