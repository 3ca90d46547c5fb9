"""Masked diffusion: the model-agnostic sampler and the networks it drives (the embedded denoiser, the LLaDA-architecture test model)."""
