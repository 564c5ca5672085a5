"""Helpers for the continuous-training tests: span directories and a shifted distribution.

The models and servers they use are the shared fixtures of tests/conftest.py (tests/support/).
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.support.data import write_csv

CLASSES = ("billing", "technical", "shipping", "account")

# The same four classes as the demo data, written in another register entirely (B2B tickets):
# a model trained on the demo data has seen almost none of these words.
_SHIFTED = {
    "billing": [
        "procurement flagged a duplicate debit on purchase order {n}",
        "our finance department disputes invoice {n}",
        "requesting a credit memo for overbilled seats",
        "ledger reconciliation shows an overpayment of {n} euros",
        "VAT was miscalculated on the quarterly statement",
        "wire transfer reference {n} was applied twice",
    ],
    "technical": [
        "API gateway returns 502 for tenant {n}",
        "SSO integration throws SAML assertion errors",
        "webhook deliveries time out after the deploy",
        "kubernetes operator crashloops on startup in cluster {n}",
        "GraphQL endpoint rejects valid queries",
        "memory leak in desktop client build {n}",
    ],
    "shipping": [
        "freight consignment {n} is stuck at customs",
        "pallet arrived with broken seals at our warehouse",
        "courier left the crate at the loading dock of another building",
        "bill of lading does not match the manifest for container {n}",
        "vessel delayed, we need a revised ETA",
        "customs broker requests a commercial invoice for consignment {n}",
    ],
    "account": [
        "offboard employee {n} and revoke their seat",
        "provision ten new seats under our enterprise tenant",
        "SCIM sync created duplicate users in directory {n}",
        "transfer workspace ownership to our new admin",
        "audit log shows a login from an unknown region",
        "merge two organisation profiles into one",
    ],
}
_SIGN_OFF = ["regards, IT operations", "ticket priority P2", "escalating per SLA", "cc our account manager", ""]


def shifted_rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(CLASSES)
        parts = [rng.choice(_SHIFTED[label]).format(n=rng.randint(1000, 99999)), rng.choice(_SIGN_OFF)]
        rows.append((". ".join(p for p in parts if p), label))
    return rows


def make_span(root: Path, number: int, train_rows, test_rows, prefix: str = "span-") -> Path:
    span = root / f"{prefix}{number}"
    write_csv(span / "train.csv", train_rows)
    write_csv(span / "test.csv", test_rows)
    return span
