"""The paper's side of the claims (typed from PAPER.md: the *paper's* statements and numbers)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClaimSpec:
    id: str
    statement: str
    where: str
    paper_number: str
    planned: str            # the chapter meant to test it (shown while no results file records it)


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec("C1", "A small-scale random codebook initialization trained jointly uses few codes "
              "(low utilization, perplexity far below K).", "2024 abstract",
              "qualitative (no number published)", "02_tokens_collapse"),
    ClaimSpec("C2", "k-means on an untrained encoder bunches the tokens in a narrow region: lower codebook "
              "spread, lower mode entropy H, fewer data clusters covered than deferred quantization.",
              "2025 §4.1, Fig. 2-3", "Table 1 codebook cosine: 0.67 vs 0.94 (MaskGIT), 0.64 vs 0.97 (VAR), "
              "shrunk vs not", "02_tokens_collapse"),
    ClaimSpec("C3", "An untrained encoder's outputs are more concentrated (fewer distinguishable modes) than a "
              "trained encoder's.", "2025 Fig. 2b", "qualitative (figure only)", "03_embeddings_collapse"),
    ClaimSpec("C4", "Low encoder capacity collapses the embeddings (low effective dimension, poor cluster "
              "separation); codebook fixes alone do not undo it, more capacity does.", "2024 abstract",
              "qualitative (no number published)", "03_embeddings_collapse"),
    ClaimSpec("C5", "Shrinkage grows with K at fixed code dimension: vanilla perplexity plateaus at large K and "
              "its reconstruction falls behind deferred above some K; at small K deferred can be worse.",
              "2025 §5.2, Fig. 4 (CIFAR-10)", "plateau after K = 2^13; crossover near K = 2^12",
              "09_real_images"),
    ClaimSpec("C6", "Shrinkage can coexist with good-looking reconstructions (\"deceptively strong\").",
              "2026 abstract; Table 1", "MaskGIT, ImageNet-100: perplexity 5,312 → 925 (5.7× drop) while "
              "MSE 3.28 → 3.91 (1.19×)", "09_real_images"),
    ClaimSpec("C7", "A generator trained on a shrunk tokenizer's tokens is less diverse (lower mean pairwise "
              "pixel distance) and less faithful (g-FID).", "2025 Tables 2-3",
              "pixel distance 80.77 → 75.89 (MaskGIT), 75.92 → 70.69 (VAR); g-FID 14.60 → 14.75, "
              "10.70 → 12.88", "06_generation_diversity"),
    ClaimSpec("C8", "Deferred quantization keeps reconstruction and compression while fixing the collapse.",
              "2026 abstract; Table 1", "perplexity 925 → 5,312 and r-FID 12.22 → 8.58 (MaskGIT, "
              "shrunk → deferred)", "04_fixes"),
    ClaimSpec("C9", "(2605.06870) VQ training collapses latent and codebook effective dimension; an AE warm-up "
              "raises it, and a longer warm-up lowers the final loss up to a point.", "arXiv 2605.06870",
              "VQGAN codebook effective dimension 3-5 → 17-19; rFID −17 to −35%", "03_embeddings_collapse"),
)
CLAIM_IDS = tuple(c.id for c in CLAIMS)
