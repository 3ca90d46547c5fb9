"""DiffLM (Zhou et al.): the VAE and latent-diffusion networks (``model.py``), their training
(``train.py``), sampling and grammar-constrained decoding (``decode.py``), and the generator
(``generator.py``). The pieces are importable from here as one namespace (the tests use it); the
generator's registry entry points at ``generator.py``.
"""

from aod_core.generators.difflm.decode import compile_grammar, decode_records, sample_latents
from aod_core.generators.difflm.model import FrozenDecoder, LatentDenoiser, RecordEncoder, SoftPrompt, prefix_embeddings
from aod_core.generators.difflm.train import (
    BetaSchedule,
    RecordBatch,
    VAEReport,
    encode_means,
    evaluate_recon,
    kl_divergence,
    reconstruction_loss,
    serialize_record,
    standardise,
    tokenize_records,
    train_latent_diffusion,
    train_vae,
)

__all__ = [
    "BetaSchedule",
    "FrozenDecoder",
    "LatentDenoiser",
    "RecordBatch",
    "RecordEncoder",
    "SoftPrompt",
    "VAEReport",
    "compile_grammar",
    "decode_records",
    "encode_means",
    "evaluate_recon",
    "kl_divergence",
    "prefix_embeddings",
    "reconstruction_loss",
    "sample_latents",
    "serialize_record",
    "standardise",
    "tokenize_records",
    "train_latent_diffusion",
    "train_vae",
]
