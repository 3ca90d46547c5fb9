"""DiffLM (Zhou et al.): the VAE and latent-diffusion networks, their training, grammar-constrained decoding, and the generator."""
