"""A generated demo dataset: customer-support messages in four classes.

Generated (seeded) rather than shipped, so the project carries no third-party data. The task is
made to be learnable but not trivial: classes share vocabulary, messages mix a topic phrase with
generic filler and sometimes a phrase from another topic, 3% of labels are flipped, and about
8% of messages are in Chinese (no spaces between words), which exercises the tokenizer.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

CLASSES = ("billing", "technical", "shipping", "account")

_TOPIC = {
    "billing": [
        "I was charged twice for my subscription",
        "the invoice shows the wrong amount",
        "please refund the extra payment",
        "my credit card was billed after I cancelled",
        "why did the monthly price go up",
        "I need a receipt for the last payment",
        "the discount code was not applied to my bill",
        "there is an unknown charge on my statement",
    ],
    "technical": [
        "the app crashes when I open the settings page",
        "I get an error 500 when uploading a file",
        "the website is very slow since the update",
        "sync stopped working on my laptop",
        "the login button does nothing on my phone",
        "notifications are not showing up anymore",
        "the export to pdf produces an empty file",
        "video playback freezes after a few seconds",
    ],
    "shipping": [
        "my package has not arrived yet",
        "the tracking number does not work",
        "the parcel was delivered to the wrong address",
        "can you ship the order faster",
        "the box arrived damaged",
        "delivery was scheduled for monday but nobody came",
        "how long does international shipping take",
        "one item is missing from my order",
    ],
    "account": [
        "I cannot reset my password",
        "please delete my account and my data",
        "how do I change the email on my profile",
        "my account was locked after too many attempts",
        "I want to add a second user to my team",
        "two factor authentication codes are not accepted",
        "please update my username",
        "someone else may have access to my account",
    ],
}

_TOPIC_ZH = {
    "billing": ["我的订阅被重复扣费了", "发票金额不对", "请退还多收的费用"],
    "technical": ["应用打开设置页面就崩溃", "上传文件时出现错误", "更新后网站很慢"],
    "shipping": ["我的包裹还没有到", "快递单号查不到", "包裹送错地址了"],
    "account": ["我无法重置密码", "请删除我的账户", "怎么修改我的邮箱"],
}

_OPENERS = ["hi", "hello", "good morning", "hey team", "dear support", "", "", "urgent:", "quick question:"]
_FILLER = [
    "thanks in advance",
    "this is really frustrating",
    "please help as soon as possible",
    "I have been a customer for years",
    "my order number is {n}",
    "I already tried contacting you yesterday",
    "let me know what you need from me",
    "",
    "",
]


def _message(rng: random.Random, label: str) -> str:
    if rng.random() < 0.08:
        text = rng.choice(_TOPIC_ZH[label])
        if rng.random() < 0.5:
            text += "，" + rng.choice(["谢谢", "请尽快处理", "非常着急"])
        return text
    parts = [rng.choice(_OPENERS), rng.choice(_TOPIC[label])]
    if rng.random() < 0.35:
        parts.append(rng.choice(_TOPIC[label]))
    if rng.random() < 0.15:  # a confusing phrase from another topic
        other = rng.choice([c for c in CLASSES if c != label])
        parts.append("also " + rng.choice(_TOPIC[other]))
    parts.append(rng.choice(_FILLER).format(n=rng.randint(10000, 99999)))
    text = ". ".join(p for p in parts if p).strip()
    return text[0].upper() + text[1:] if rng.random() < 0.7 else text


def generate(output_dir: str | Path, train_rows: int = 2400, test_rows: int = 600, seed: int = 7) -> Path:
    """Writes ``train.csv`` and ``test.csv`` (``text,label``) and returns the directory."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for name, rows in (("train.csv", train_rows), ("test.csv", test_rows)):
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            label = rng.choice(CLASSES)
            text = _message(rng, label)
            if rng.random() < 0.03:
                label = rng.choice([c for c in CLASSES if c != label])
            writer.writerow([text, label])
        path = out / name
        content = buffer.getvalue().encode("utf-8")
        # Leave an identical file untouched: ExampleGen fingerprints files by content and
        # modification time, so rewriting it would defeat the pipeline cache on a rerun.
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    return out
