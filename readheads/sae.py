"""Sparse autoencoders (SAEs) on a model's activations, stored in SAELens' file format.

An SAE reads an activation x [d_in] and writes it as a sparse, non-negative combination of
d_sae learned directions (the rows of W_dec) plus a bias:

    f     = act((x - b_dec) @ W_enc + b_enc)      features [d_sae], mostly zero
    x_hat = f @ W_dec + b_dec                     reconstruction [d_in]

act is a ReLU ("standard" SAEs, trained with an L1 penalty) or keeps the k largest
pre-activations ("topk"). A folder holds ``cfg.json`` (SAELens' field names: d_in, d_sae,
architecture, apply_b_dec_to_input, normalize_activations, metadata.hook_name...) and
``sae_weights.safetensors`` (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec), so
SAELens loads ours and we load its files, without depending on it.

SAEs by name (`load_sae`):
- ``smollm2-135m-res-l15``: the course's SAE on SmolLM2's residual stream entering layer 15,
  trained by `python -m readheads.sae_training` and shipped with the course.
- ``gpt2-small-res-jb-l<L>``: the public GPT-2 small residual SAEs (SAELens release
  "gpt2-small-res-jb", 24,576 features at blocks.<L>.hook_resid_pre), from the Hub.
- a folder in SAELens' format.

An SAE carries what it needs to be applied correctly. The course's SAEs were trained without
tokens of massive norm (a few ordinary tokens reach 35x the median), so `load_sae` reads the
limit from the manifest into ``sae.norm_limit`` (None for SAEs without one: public SAEs,
SAEs built in memory), and applying the SAE honours it by default: `encode` gives a token of
a larger norm no features (all zero: the SAE says nothing about it) and ``sae(x)`` passes it
through unchanged. ``norm_limit=`` overrides it: a number sets another limit, None applies the
SAE to every token. The training's input scaling (the manifest's ``input_scale``) needs no
such care: it is folded into the weights, so the SAE reads raw activations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn

SAE_DIR = Path(__file__).parent / "saes"
CONFIG_FILE, WEIGHTS_FILE = "cfg.json", "sae_weights.safetensors"
GPT2_SAE_REPO = "jbloom/GPT2-Small-SAEs-Reformatted"
ARCHITECTURES = ("standard", "topk")


class _OwnLimit:
    def __repr__(self) -> str:
        return "OWN_LIMIT"


OWN_LIMIT = _OwnLimit()  # norm_limit=OWN_LIMIT (the default): the SAE's own `norm_limit`


def resolve_norm_limit(sae, norm_limit=OWN_LIMIT) -> float | None:
    """The norm limit to apply `sae` with: its own unless `norm_limit` says otherwise."""
    return getattr(sae, "norm_limit", None) if norm_limit is OWN_LIMIT else norm_limit


@dataclass
class SAEConfig:
    """An SAE's shape and what it reads, with SAELens' field names."""

    d_in: int
    d_sae: int
    architecture: str = "standard"
    k: int | None = None  # topk only: features kept per token
    apply_b_dec_to_input: bool = True  # subtract b_dec before encoding
    normalize_activations: str = "none"
    dtype: str = "float32"
    device: str = "cpu"
    metadata: dict = field(default_factory=dict)  # model_name, hook_name, hook_layer, ...

    @property
    def hook_name(self) -> str:
        return self.metadata.get("hook_name", "")

    @classmethod
    def from_dict(cls, raw: dict) -> SAEConfig:
        """Read SAELens' cfg.json: version 6 nests model_name, hook_name... in "metadata";
        older files have them at the top level."""
        metadata = dict(raw.get("metadata") or {})
        for key in ("model_name", "hook_name", "hook_layer", "hook_head_index", "context_size",
                    "prepend_bos", "dataset_path"):
            if key in raw and key not in metadata:
                metadata[key] = raw[key]
        architecture = raw.get("architecture", "standard")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"This SAE's architecture is {architecture!r}; the course reads "
                             f"{' and '.join(ARCHITECTURES)} SAEs")
        if raw.get("normalize_activations", "none") not in ("none", None):
            raise ValueError(f"This SAE normalizes its inputs ({raw['normalize_activations']!r}),"
                             " which the course's SAE does not implement")
        return cls(d_in=raw["d_in"], d_sae=raw["d_sae"], architecture=architecture,
                   k=raw.get("k"), apply_b_dec_to_input=raw.get("apply_b_dec_to_input", True),
                   dtype=raw.get("dtype", "float32"), device=raw.get("device", "cpu"),
                   metadata=metadata)


@dataclass(frozen=True)
class SAEInfo:
    """What a loaded SAE is. Attached as ``sae.course_info`` (picks reference tensors)."""

    name: str
    fingerprint: str  # hash of the weights
    source: str

    @property
    def key(self) -> str:
        return f"sae-{self.name}-{self.fingerprint[:12]}"


class SparseAutoencoder(nn.Module):
    """norm_limit: tokens of a larger norm are left alone (see the module's docstring)."""

    def __init__(self, cfg: SAEConfig, norm_limit: float | None = None):
        super().__init__()
        if cfg.architecture == "topk" and not cfg.k:
            raise ValueError("A topk SAE needs k (features kept per token)")
        self.cfg = cfg
        self.norm_limit = norm_limit
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))

    def _over(self, x: torch.Tensor, norm_limit) -> torch.Tensor | None:
        """bool [..., 1]: the tokens of x over the norm limit (None: no limit)."""
        limit = resolve_norm_limit(self, norm_limit)
        return None if limit is None else x.norm(dim=-1, keepdim=True) > limit

    def encode(self, x: torch.Tensor, norm_limit=OWN_LIMIT) -> torch.Tensor:
        """Feature activations [..., d_sae] of activations x [..., d_in]; all zero for a
        token over the norm limit (default: the SAE's own; None: no limit)."""
        over = self._over(x, norm_limit)
        if self.cfg.apply_b_dec_to_input:
            x = x - self.b_dec
        pre = x @ self.W_enc + self.b_enc
        if self.cfg.architecture == "standard":
            features = torch.relu(pre)
        else:
            values, indices = pre.topk(self.cfg.k, dim=-1)
            features = torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
        return features if over is None else features.masked_fill(over, 0.0)

    def decode(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor, norm_limit=OWN_LIMIT) -> torch.Tensor:
        """The reconstruction of x [..., d_in]; a token over the norm limit (default: the
        SAE's own; None: no limit) is passed through unchanged."""
        over = self._over(x, norm_limit)
        x_hat = self.decode(self.encode(x, norm_limit=None))
        return x_hat if over is None else torch.where(over, x, x_hat)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Give every decoder row (feature direction) unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)

    def save(self, folder: Path, dtype: torch.dtype = torch.float32) -> Path:
        """Write cfg.json and sae_weights.safetensors (SAELens' layout) into `folder`; the
        weights in `dtype` (float16 halves the file; loading computes in float32)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: p.detach().to("cpu", dtype).contiguous() for name, p in self.named_parameters()}
        save_file(state, str(folder / WEIGHTS_FILE))
        config = {k: v for k, v in asdict(self.cfg).items() if v is not None}
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=1) + "\n")
        return folder


def fingerprint(sae: SparseAutoencoder) -> str:
    digest = hashlib.sha256()
    for name, parameter in sorted(sae.named_parameters()):
        digest.update(name.encode())
        digest.update(parameter.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def load_sae_folder(folder: Path, name: str | None = None, device: str = "cpu",
                    source: str | None = None) -> SparseAutoencoder:
    """An SAE from a folder in SAELens' format (cfg.json + sae_weights.safetensors)."""
    folder = Path(folder)
    for file in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / file).is_file():
            raise FileNotFoundError(f"{folder} is not an SAE folder: {file} is missing (an SAE "
                                    f"in SAELens' format has {CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg = SAEConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    weights = load_file(str(folder / WEIGHTS_FILE))
    expected = {"W_enc": (cfg.d_in, cfg.d_sae), "b_enc": (cfg.d_sae,),
                "W_dec": (cfg.d_sae, cfg.d_in), "b_dec": (cfg.d_in,)}
    for key, shape in expected.items():
        if key not in weights:
            raise KeyError(f"{folder / WEIGHTS_FILE} has no {key} (it has {sorted(weights)})")
        if tuple(weights[key].shape) != shape:
            raise ValueError(f"{key} in {folder / WEIGHTS_FILE} has shape "
                             f"{tuple(weights[key].shape)}; cfg.json says {shape}")
    cfg.device = str(device)
    sae = SparseAutoencoder(cfg)
    sae.load_state_dict({k: weights[k].float() for k in expected})
    sae.to(device).requires_grad_(False)
    sae.course_info = SAEInfo(name or folder.name, fingerprint(sae), source or str(folder))
    manifest = folder / "manifest.json"  # how the course's own SAEs were trained and measured
    sae.manifest = json.loads(manifest.read_text()) if manifest.is_file() else None
    sae.norm_limit = ((sae.manifest or {}).get("outliers") or {}).get("norm_limit")
    return sae


def committed_saes() -> list[str]:
    return sorted(p.name for p in SAE_DIR.iterdir() if (p / CONFIG_FILE).is_file()) \
        if SAE_DIR.is_dir() else []


def load_sae(name: str, device: str = "cpu") -> SparseAutoencoder:
    """An SAE by name (see the module's docstring) or by folder."""
    if name in committed_saes():
        return load_sae_folder(SAE_DIR / name, name, device, f"shipped with the course ({name})")
    if name.startswith("gpt2-small-res-jb-l"):
        layer = int(name.removeprefix("gpt2-small-res-jb-l"))
        return load_sae_folder(_from_hub(f"blocks.{layer}.hook_resid_pre"), name, device,
                               f"{GPT2_SAE_REPO}/blocks.{layer}.hook_resid_pre")
    if Path(name).is_dir():
        return load_sae_folder(Path(name), device=device)
    raise ValueError(f"Unknown SAE {name!r}: use one of {', '.join(committed_saes())}, "
                     "gpt2-small-res-jb-l<layer> (0-11, from the Hub) or a folder in SAELens' format")


def _from_hub(subfolder: str) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        for file in (CONFIG_FILE, WEIGHTS_FILE):
            path = hf_hub_download(GPT2_SAE_REPO, f"{subfolder}/{file}")
    except Exception as error:  # no network, or the Hub refused
        from .models import ModelUnavailableError

        raise ModelUnavailableError(
            f"Could not download the GPT-2 small SAE {GPT2_SAE_REPO}/{subfolder} "
            f"({type(error).__name__}). It needs the Hugging Face Hub; offline, use the "
            "course's SAE for SmolLM2: load_sae('smollm2-135m-res-l15')") from error
    return Path(path).parent


class SAEWeights(NamedTuple):
    """An SAE's four weight tensors, as exercises take them (a `SparseAutoencoder` has the
    same attributes, so a function written for one works on the other). b_dec is subtracted
    before encoding."""

    W_enc: torch.Tensor  # [d_in, d_sae]
    b_enc: torch.Tensor  # [d_sae]
    W_dec: torch.Tensor  # [d_sae, d_in]
    b_dec: torch.Tensor  # [d_in]


def weights_of(sae: SparseAutoencoder, features=None) -> SAEWeights:
    """The SAE's weights as an `SAEWeights` (only `features`, a list of indices, if given)."""
    index = slice(None) if features is None else torch.as_tensor(features)
    return SAEWeights(sae.W_enc[:, index].clone(), sae.b_enc[index].clone(),
                      sae.W_dec[index].clone(), sae.b_dec.clone())


DEFAULT_SAES = {"smollm2-135m": "smollm2-135m-res-l15", "gpt2-small": "gpt2-small-res-jb-l8"}


def default_sae(model, device: str | None = None) -> SparseAutoencoder:
    """The chapter's SAE for a course model: the course's own for SmolLM2, the public
    residual-stream SAE at layer 8 for GPT-2 small."""
    name = model.course_info.name
    if name not in DEFAULT_SAES:
        raise ValueError(f"There is no pretrained SAE for {name}: the SAE chapter runs on "
                         f"{' or '.join(DEFAULT_SAES)} (set MODEL or $COURSE_MODEL)")
    return load_sae(DEFAULT_SAES[name], device=device or str(model.cfg.device))
