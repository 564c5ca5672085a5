"""Serve an earlier model version again by re-publishing it as the newest one."""

from __future__ import annotations

import datetime as dt

from textops.ct.state import LogFn, LoopError


def rollback(repository: str, model_name: str, to_version: int, log: LogFn = print):  # noqa: ANN201
    """Publishes version ``to_version`` again as the newest version; returns the new ModelVersion.

    Every server that follows the newest version (ours, TF Serving, KServe) hot-swaps to it the
    way it does for any push; the original versions stay untouched (versions are immutable).
    """
    from textops import model_repository

    versions = model_repository.list_versions(repository, model_name)
    if not versions:
        known = model_repository.list_models(repository)
        raise LoopError(
            f"model {model_name!r} has no versions in {repository}"
            + (f"; models there: {', '.join(known)}" if known else "; is --model-repository right?")
        )
    chosen = next((v for v in versions if v.version == to_version), None)
    if chosen is None:
        raise LoopError(
            f"model {model_name!r} has no version {to_version} in {repository}; available versions: "
            f"{', '.join(str(v.version) for v in versions)}"
        )
    latest = versions[-1]
    if latest.version == to_version:
        raise LoopError(f"version {to_version} is already the newest version of {model_name!r}; nothing to roll back")
    original = model_repository.read_push_record(chosen.path)
    source = original.get("rollback_of", to_version)  # rolling back to a rollback names the original
    record = {
        "rollback_of": source,
        "republished_from": to_version,
        "replaced_version": latest.version,
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "original_record": original,
    }
    published = model_repository.publish_version(chosen.path, repository, model_name, record=record)
    log(
        f"rolled back {model_name}: version {published.version} is a copy of version {to_version} "
        f"and replaces {latest.version} as the newest version ({published.path})"
    )
    return published
