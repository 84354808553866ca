"""CTR models (paper 3.3 and the baselines): a backbone (PLE, Wide&Deep, DeepFM, DCN-V2), optionally with the
LARR scene module (scene encoder + alignment, or the scene vector alone: noAL) plugged in.

A model kind is ``BACKBONE`` or ``BACKBONE+MODULE`` (``deepfm+larr``, ``dcnv2+noal``); ``larr`` and ``noal``
name the paper's PLE versions (``ple+larr``, ``ple+noal``).  The module works on any backbone the same way:
its vector e_s (in the space of concat(user id embedding, item id embedding), which the alignment loss pulls
it towards) joins the backbone's dense input, and, for backbones with field interactions (DeepFM), its two
halves join the fields as two more emb_dim-wide fields.

CTCVR is predicted as pCTR x pCVR (ESMM style), not directly as in the paper: the CTR head is trained on
clicks and the product on orders over all impressions, so P(order) <= P(click) holds by construction and the
CVR tower never sees the sample-selection bias of training on clicked rows only.

Every knob comes from :class:`larr.config.CtrConfig`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from larr.config import CtrConfig
from larr.ctr.kinds import BACKBONE_NAMES, canonical_kind, parse_kind
from larr.llm.contrastive import gather_with_grad, info_nce, info_nce_blocks


def mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    return nn.Sequential(*layers)


class FeatureEmbedding(nn.Module):
    """One embedding table per categorical column (index 0 = padding, 1 = OOV) plus the numeric vector."""

    def __init__(self, sizes: list[int], dim: int, n_numeric: int):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(n, dim, padding_idx=0) for n in sizes)
        self.dim = dim
        self.out_dim = dim * len(sizes) + n_numeric

    def fields(self, cat: torch.Tensor) -> torch.Tensor:
        """[B, F, dim] field embeddings."""
        return torch.stack([t(cat[:, i]) for i, t in enumerate(self.tables)], dim=1)

    def forward(self, cat: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.fields(cat).flatten(1), num], dim=1)


class CGC(nn.Module):
    """One customized-gate-control layer of PLE: shared and task-specific experts, a gate per task."""

    def __init__(self, in_dim: int, expert_dim: int, n_tasks: int, n_shared: int, n_specific: int, last: bool):
        super().__init__()
        self.n_tasks, self.n_specific, self.last = n_tasks, n_specific, last
        self.shared = nn.ModuleList(mlp([in_dim, expert_dim, expert_dim]) for _ in range(n_shared))
        self.specific = nn.ModuleList(nn.ModuleList(mlp([in_dim, expert_dim, expert_dim]) for _ in range(n_specific))
                                      for _ in range(n_tasks))
        self.gates = nn.ModuleList(nn.Linear(in_dim, n_shared + n_specific) for _ in range(n_tasks))
        self.shared_gate = None if last else nn.Linear(in_dim, n_shared + n_tasks * n_specific)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        """``inputs``: one tensor per task plus the shared one (last)."""
        shared = [e(inputs[-1]) for e in self.shared]
        outs = []
        specific_all = []
        for t in range(self.n_tasks):
            spec = [e(inputs[t]) for e in self.specific[t]]
            specific_all += spec
            experts = torch.stack(spec + shared, dim=1)
            w = torch.softmax(self.gates[t](inputs[t]), dim=-1).unsqueeze(-1)
            outs.append((w * experts).sum(1))
        if not self.last:
            experts = torch.stack(specific_all + shared, dim=1)
            w = torch.softmax(self.shared_gate(inputs[-1]), dim=-1).unsqueeze(-1)
            outs.append((w * experts).sum(1))
        return outs


class PLE(nn.Module):
    """Progressive layered extraction (Tang et al. 2020) with CTR and CVR towers."""

    def __init__(self, in_dim: int, expert_dim: int = 64, levels: int = 2, n_shared: int = 2, n_specific: int = 1,
                 tower_dim: int = 32, dropout: float = 0.0):
        super().__init__()
        self.levels = nn.ModuleList(CGC(in_dim if i == 0 else expert_dim, expert_dim, 2, n_shared, n_specific,
                                        last=i == levels - 1) for i in range(levels))
        self.towers = nn.ModuleList(mlp([expert_dim, tower_dim, 1], dropout) for _ in range(2))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = [x, x, x]
        for level in self.levels:
            h = level(h)
        return self.towers[0](h[0]).squeeze(-1), self.towers[1](h[1]).squeeze(-1)


class Backbone(nn.Module):
    """What turns the dense input x [B, in_dim] (and the field embeddings [B, F, emb_dim], for backbones that
    cross them) into the CTR and CVR logits: each subclass defines ``forward(x, fields) -> (ctr_logit,
    cvr_logit)``.  ``small_init``: the backbone wants N(0, 0.01) id embeddings."""

    small_init = False


class PLEBackbone(PLE, Backbone):
    """PLE (Tang et al. 2020), the paper's backbone."""

    def __init__(self, in_dim: int, cfg: CtrConfig):
        super().__init__(in_dim, cfg.expert_dim, cfg.ple_levels, cfg.shared_experts, cfg.specific_experts,
                         cfg.tower_dim, cfg.dropout)

    def forward(self, x: torch.Tensor, fields: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return super().forward(x)


class WideDeep(Backbone):
    """Wide&Deep (Cheng et al. 2016): a linear part and an MLP per task over the same input."""

    def __init__(self, in_dim: int, cfg: CtrConfig):
        super().__init__()
        self.deep = nn.ModuleList(mlp([in_dim, *cfg.deep_dims, 1], cfg.dropout) for _ in range(2))
        self.wide = nn.ModuleList(nn.Linear(in_dim, 1) for _ in range(2))

    def forward(self, x: torch.Tensor, fields: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ((self.deep[0](x) + self.wide[0](x)).squeeze(-1), (self.deep[1](x) + self.wide[1](x)).squeeze(-1))


class DeepFM(WideDeep):
    """DeepFM (Guo et al. 2017): Wide&Deep plus the second-order factorisation-machine term over the field
    embeddings, 1/2 sum_k ((sum_f v_fk)^2 - sum_f v_fk^2), on the CTR logit.

    The FM term sums F(F-1)/2 pairwise products: at PyTorch's N(0, 1) embedding init its std is ~30 for 11
    fields x 16 dims, the sigmoid saturates and DeepFM never trains; small init, as in DeepFM's reference
    implementations (``small_init``)."""

    small_init = True

    def forward(self, x: torch.Tensor, fields: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ctr, cvr = super().forward(x, fields)
        fm = 0.5 * ((fields.sum(1) ** 2) - (fields ** 2).sum(1)).sum(1)
        return ctr + fm, cvr


class CrossV2(nn.Module):
    """One cross layer of DCN-V2 (Wang et al. 2021, eq. 1): x_{l+1} = x_0 * (W_l x_l + b_l) + x_l, W_l full
    rank [d, d] (the paper's "DCN-M" low-rank variant is not used: d is small here)."""

    def __init__(self, dim: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0 * self.linear(x) + x


class DCNv2(Backbone):
    """DCN-V2 (Wang et al. 2021), parallel structure: ``cross_layers`` cross layers and an MLP over the same
    input, their outputs concatenated into one linear head per task (the reference implementation's
    "parallel" combination; TF Recommenders' ``tfrs.layers.dcn.Cross`` computes the same layer)."""

    def __init__(self, in_dim: int, cfg: CtrConfig):
        super().__init__()
        self.cross = nn.ModuleList(CrossV2(in_dim) for _ in range(cfg.cross_layers))
        self.deep = mlp([in_dim, *cfg.deep_dims], cfg.dropout) if cfg.deep_dims else nn.Identity()
        deep_out = cfg.deep_dims[-1] if cfg.deep_dims else in_dim
        self.deep_act = nn.ReLU()
        self.heads = nn.ModuleList(nn.Linear(in_dim + deep_out, 1) for _ in range(2))

    def forward(self, x: torch.Tensor, fields: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        for layer in self.cross:
            h = layer(x, h)
        both = torch.cat([h, self.deep_act(self.deep(x))], dim=1)
        return self.heads[0](both).squeeze(-1), self.heads[1](both).squeeze(-1)


BACKBONES: dict[str, type[Backbone]] = {"ple": PLEBackbone, "wdl": WideDeep, "deepfm": DeepFM, "dcnv2": DCNv2}
assert tuple(BACKBONES) == BACKBONE_NAMES


class SceneEncoder(nn.Module):
    """Paper eq. 23: stack the N scene vectors, prepend a trainable aggregation token, one bidirectional
    transformer layer, pool (the aggregation token's output, or the mean of the present vectors), MLP
    projection head -> e_s.  Positions whose key has no vector are masked out of attention and pooling."""

    def __init__(self, vec_dim: int, out_dim: int, heads: int = 1, ffn: int = 64, pooling: str = "agg"):
        super().__init__()
        if vec_dim % heads:
            raise ValueError(f"ctr.scene_heads={heads} must divide the scene vector dimension {vec_dim}")
        self.agg = nn.Parameter(torch.randn(1, 1, vec_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(vec_dim, heads, dim_feedforward=ffn, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=1, enable_nested_tensor=False)
        self.head = mlp([vec_dim, vec_dim, out_dim])
        self.pooling = pooling

    def forward(self, vectors: torch.Tensor, missing: torch.Tensor, table: torch.Tensor | None = None,
                rows: torch.Tensor | None = None) -> torch.Tensor:
        """``vectors`` [B, N, d]; ``missing`` [B, N] True where a key has no vector (masked out).  ``table``
        [V, d] and ``rows`` [B, N] (``vectors == table[rows]``), when given, let a training step of the ``agg``
        pooling read the attention scores from the table's projections when the table has fewer rows than the
        batch has vectors (:meth:`_agg_output`); evaluation and exported graphs always take the direct path,
        so their shape does not depend on the batch size."""
        if self.pooling == "agg":
            return self.head(self._agg_output(vectors, missing, table, rows))
        b = vectors.shape[0]
        x = torch.cat([self.agg.expand(b, -1, -1), vectors], dim=1)
        mask = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=missing.device), missing], dim=1)
        h = self.encoder(x, src_key_padding_mask=mask)
        pooled = h[:, 1:].masked_fill(missing.unsqueeze(-1), 0).sum(1) / (~missing).sum(1, keepdim=True).clamp(min=1)
        return self.head(pooled)

    def _agg_output(self, vectors: torch.Tensor, missing: torch.Tensor, table: torch.Tensor | None = None,
                    rows: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output at the aggregation token only.  With one layer and agg pooling nothing else is
        read, so only the agg token's query is attended and only its row goes through the feed-forward block:
        the same weights and the same value as the full layer at position 0 (tested).  Mirrors
        ``nn.TransformerEncoderLayer`` (post-norm) step by step, with the attention regrouped (exact algebra,
        float rounding aside) so that no scene vector's key or value is ever projected.  With the agg token
        x_0 (a parameter, the same for every sample) as the only query, per head h:

        * score_j = (W_q x_0 + b_q)_h . (W_k x_j + b_k)_h = x_j . u_h + c_h, with u_h = W_k,h^T q_h and
          c_h = q_h . b_k,h computed once per step;
        * attended_h = sum_j a_j (W_v x_j + b_v)_h = W_v,h (sum_j a_j x_j) + b_v,h, as the weights sum to 1.

        So a step projects one mixed vector per head and sample instead of N keys and N values, and no
        gradient flows into the (frozen) scene vectors.  Before this, the key/value projections were ~70% of
        a LARR training step (``benchmarks/ctr_training.py``, issue 16).

        In training, the scores' x_j . u_h are read from the table's projections (table @ u^T, gathered by
        ``rows``) when the table has fewer rows than the batch has vectors (6,500 against 24,000 at batch
        2,400 on small): the same products, and the backward sums the gradient per table row before its
        matmul, so two passes over the [B, N, d] vectors become passes over the smaller table."""
        layer = self.encoder.layers[0]
        attn = layer.self_attn
        b, _, d = vectors.shape
        heads = attn.num_heads
        dh = d // heads
        w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
        x0 = self.agg.view(1, d)
        q = (x0 @ w_q.T + b_q).view(heads, dh)
        u = torch.einsum("hk,hkd->hd", q, w_k.view(heads, dh, d))  # [H, d]
        c = (q * b_k.view(heads, dh)).sum(-1)  # [H]
        scale = dh ** -0.5
        own = ((x0 @ u.T).view(1, heads, 1) + c.view(1, heads, 1)) * scale  # the agg token's own score
        if self.training and table is not None and rows is not None and table.shape[0] < rows.numel():
            raw = nn.functional.embedding(rows, table @ u.T)  # [B, N, H]
        else:
            raw = vectors @ u.T
        scores = (raw.transpose(1, 2) + c.view(1, heads, 1)) * scale  # [B, H, N]
        scores = scores.masked_fill(missing.unsqueeze(1), float("-inf"))
        weights = torch.softmax(torch.cat([own.expand(b, -1, -1), scores], dim=-1), dim=-1)  # [B, H, 1 + N]
        z = weights[..., :1] * x0.view(1, 1, d) + weights[..., 1:] @ vectors  # [B, H, d]
        values = torch.einsum("bhd,hkd->bhk", z, w_v.view(heads, dh, d)) + b_v.view(1, heads, dh)
        attended = attn.out_proj(values.reshape(b, d))
        h = layer.norm1(x0 + layer.dropout1(attended))
        return layer.norm2(h + layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(h))))))


def alignment_loss(e_s: torch.Tensor, t: torch.Tensor, temperature: float, negatives: int = 0,
                   block: int = 0) -> torch.Tensor:
    """Symmetric InfoNCE between the scene vector ``e_s`` and the target ``t`` (paper eqs. 24-25), cosine
    similarity.  ``negatives == 0``: every other sample of the batch is a negative (the paper's setting);
    ``negatives == k``: each positive is scored against ``k`` negatives sampled from the batch (Fig. 4b).

    ``block == m`` (with ``negatives == 0``): the rows are cut into consecutive blocks of ``m`` (the last one
    shorter) and every other sample of the *block* is a negative -- in-batch negatives at a batch of ``m``,
    the loss the mean over all rows.  The logits then cost n*m instead of n^2 (issue 16: at n = 2,400 the
    n x n InfoNCE was a third of a LARR training step).  Batches are shuffled, so a block is a random subset
    of the batch.  Blocks are cut in the global batch, so several processes train the same blocks as one."""
    a, b = nn.functional.normalize(e_s, dim=-1), nn.functional.normalize(t, dim=-1)
    if block > 0 and negatives <= 0:
        return _block_info_nce(a, b, temperature, block)
    n = a.shape[0]
    if negatives <= 0 or negatives >= n - 1:
        return info_nce(a, b, temperature)
    noise = torch.rand(n, n, device=a.device)  # torch's global generator: seeded per run
    noise.fill_diagonal_(-1.0)
    neg = noise.topk(negatives, dim=1).indices  # [n, k], never the diagonal
    cols = torch.cat([torch.arange(n, device=a.device).unsqueeze(1), neg], dim=1)  # positive first
    labels = torch.zeros(n, dtype=torch.long, device=a.device)
    logits_ab = (a.unsqueeze(1) * b[cols]).sum(-1) / temperature
    logits_ba = (b.unsqueeze(1) * a[cols]).sum(-1) / temperature
    ce = nn.functional.cross_entropy
    return (ce(logits_ab, labels) + ce(logits_ba, labels)) / 2


def _block_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, block: int) -> torch.Tensor:
    """InfoNCE within blocks of ``block`` consecutive rows of the global batch, the mean over this process's
    rows.  One process: the blocks are square InfoNCEs (:func:`info_nce_blocks`).  Under a process group the
    rows of every process are gathered (with gradient, as :func:`info_nce` does) and this process scores its
    own rows of each block it overlaps against that block's rows, so a block may span processes."""
    n = a.shape[0]
    all_a, offset = gather_with_grad(a)
    all_b, _ = gather_with_grad(b)
    if n == 0:  # a process with no rows still joins backward
        return (all_a.sum() + all_b.sum()) * 0.0
    if all_a is a:
        return info_nce_blocks(a, b, temperature, block)
    total = a.new_zeros(())
    ce = nn.functional.cross_entropy
    for lo in range(offset // block * block, offset + n, block):
        hi = min(lo + block, all_a.shape[0])
        first, last = max(lo, offset), min(hi, offset + n)  # this process's rows of the block
        labels = torch.arange(first - lo, last - lo, device=a.device)
        mine_a, mine_b = a[first - offset:last - offset], b[first - offset:last - offset]
        total = total + (ce(mine_a @ all_b[lo:hi].T / temperature, labels, reduction="sum")
                         + ce(mine_b @ all_a[lo:hi].T / temperature, labels, reduction="sum")) / 2
    return total / n


class CtrModel(nn.Module):
    """A backbone over the id/categorical embeddings and numeric features, with the LARR scene module when the
    kind names one (``parse_kind``).  The noCPT / noFT ablations are ``larr`` fed a different scene table."""

    def __init__(self, kind: str, sizes: list[int], n_numeric: int, cfg: CtrConfig | None = None,
                 scene_matrix: torch.Tensor | None = None, user_col: int = 0, poi_col: int = 1,
                 conversion: bool = True):
        super().__init__()
        cfg = cfg or CtrConfig()
        backbone, module = parse_kind(kind)
        if module and scene_matrix is None:
            raise ValueError(f"{kind} needs the scene-value embedding matrix")
        self.kind, self.user_col, self.poi_col = canonical_kind(kind), user_col, poi_col
        self.align = module == "larr"
        self.conversion = conversion  # False: the spec has no conversion label, CTR is the only task
        self.align_weight, self.temperature = cfg.align_weight, cfg.align_temperature
        self.negatives, self.block = cfg.align_negatives, cfg.align_block
        self.emb = FeatureEmbedding(sizes, cfg.emb_dim, n_numeric)
        in_dim = self.emb.out_dim
        if module:
            self.scene = nn.Embedding.from_pretrained(scene_matrix, freeze=True, padding_idx=0)
            # e_s lives in the space of t = concat(user id embedding, POI id embedding)
            self.scene_encoder = SceneEncoder(scene_matrix.shape[1], 2 * cfg.emb_dim, cfg.scene_heads, cfg.scene_ffn,
                                              cfg.scene_pooling)
            in_dim += 2 * cfg.emb_dim
        self.body = BACKBONES[backbone](in_dim, cfg)
        if self.body.small_init:
            for t in self.emb.tables:
                nn.init.normal_(t.weight, std=0.01)
                t.weight.data[0] = 0.0

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cat, num = batch["cat"], batch["num"]
        fields = self.emb.fields(cat)
        x = torch.cat([fields.flatten(1), num], dim=1)
        out: dict[str, torch.Tensor] = {}
        if hasattr(self, "scene_encoder"):
            rows = batch["scene_rows"]
            e_s = self.scene_encoder(self.scene(rows), rows == 0, self.scene.weight, rows)
            x = torch.cat([x, e_s], dim=1)
            fields = torch.cat([fields, e_s.view(e_s.shape[0], 2, -1)], dim=1)
            if self.align and self.training:
                t = torch.cat([fields[:, self.user_col], fields[:, self.poi_col]], dim=1)
                out["align"] = alignment_loss(e_s, t, self.temperature, self.negatives, self.block)
        ctr_logit, cvr_logit = self.body(x, fields)
        out["ctr_logit"], out["cvr_logit"] = ctr_logit, cvr_logit
        out["p_ctr"] = torch.sigmoid(ctr_logit)
        out["p_ctcvr"] = out["p_ctr"] * torch.sigmoid(cvr_logit)
        return out

    def loss(self, batch: dict[str, torch.Tensor], out: dict[str, torch.Tensor]) -> torch.Tensor:
        """BCE(CTR) + BCE(CTCVR) (+ align_weight x alignment for LARR)."""
        task = ctr_ctcvr_loss(out, batch, self.conversion)
        return task + (self.align_weight * out["align"] if "align" in out else 0.0)

    def load_state_dict(self, state: dict[str, Any], strict: bool = True, assign: bool = False):  # type: ignore[override]
        """Also loads Wide&Deep / DeepFM models saved before backbones were modules (``deep.*`` and ``wide.*``,
        now ``body.deep.*`` and ``body.wide.*``); PLE's keys did not change."""
        if any(k.startswith(("deep.", "wide.")) for k in state):
            state = {("body." + k if k.startswith(("deep.", "wide.")) else k): v for k, v in state.items()}
        return super().load_state_dict(state, strict=strict, assign=assign)


def ctr_ctcvr_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], conversion: bool = True
                   ) -> torch.Tensor:
    """BCE(CTR) from the CTR logit + BCE(CTCVR) of pCTR x pCVR, computed in log space for stability:
    log p_ctcvr = logsigmoid(ctr) + logsigmoid(cvr); log(1 - p_ctcvr) = log1p(-p_ctcvr).  Without a
    conversion label (``conversion=False``) only the CTR term."""
    bce = nn.functional.binary_cross_entropy_with_logits(out["ctr_logit"], batch["click"])
    if not conversion:
        return bce
    log_p = nn.functional.logsigmoid(out["ctr_logit"]) + nn.functional.logsigmoid(out["cvr_logit"])
    log_q = torch.log1p(-torch.exp(log_p).clamp(max=1 - 1e-7))
    y = batch["order"]
    return bce - (y * log_p + (1 - y) * log_q).mean()
