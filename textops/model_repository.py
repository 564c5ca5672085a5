"""The model repository: TF Serving's layout ``<repository>/<model_name>/<version>/``.

``<version>`` is a positive integer directory holding a SavedModel (``saved_model.pb`` and
``variables/``). The Pusher writes here, the Evaluator reads the newest version as the baseline
to beat, and the serving endpoint and stock TF Serving / KServe load from here.

A version appears atomically: it is copied into a hidden staging directory next to its final
place and renamed into place, so a reader never sees a partial version, even if the writer is
killed mid-copy. (On object stores a rename is a copy; there the version is still complete
before its ``saved_model.pb``, the file servers look for, is written last.) Staging
directories start with ``.`` which TF Serving ignores; stale ones from killed pushes are
removed by the next push.
"""

from __future__ import annotations

import json
import os
import posixpath
import time
import uuid
from dataclasses import dataclass
from typing import Optional

import tensorflow as tf

STAGING_PREFIX = ".staging-"
PUSH_RECORD = "textops_push.json"  # written inside the version's assets.extra/
_SAVED_MODEL_FILES = ("saved_model.pb", "saved_model.pbtxt")
MAX_VERSION = 2**63 - 1  # TF Serving's versions are int64


def version_from_name(name: str) -> Optional[int]:
    """The version a directory name stands for: ASCII digits, 1..2**63-1; otherwise None.

    ``str.isdigit`` alone accepts '²' or Arabic-Indic digits (``int`` then fails or reads them),
    and an unbounded digit string is a valid Python int that gRPC's int64 cannot carry.
    """
    if not 0 < len(name) <= 19 or not name.isascii() or not name.isdigit():
        return None
    version = int(name)
    return version if 0 < version <= MAX_VERSION else None


@dataclass(frozen=True)
class ModelVersion:
    model_name: str
    version: int
    path: str


def _join(*parts: str) -> str:
    return posixpath.join(*parts) if "://" in parts[0] else os.path.join(*parts)


def model_dir(repository: str, model_name: str) -> str:
    return _join(repository, model_name)


def is_complete_version(path: str) -> bool:
    return any(tf.io.gfile.exists(_join(path, f)) for f in _SAVED_MODEL_FILES)


def list_versions(repository: str, model_name: str) -> list[ModelVersion]:
    """Complete versions of ``model_name``, oldest first. Missing repository: empty list."""
    base = model_dir(repository, model_name)
    if not tf.io.gfile.isdir(base):
        return []
    versions = []
    for entry in tf.io.gfile.listdir(base):
        name = entry.rstrip("/")
        version = version_from_name(name)
        if version is None:
            continue
        path = _join(base, name)
        if tf.io.gfile.isdir(path) and is_complete_version(path):
            versions.append(ModelVersion(model_name, version, path))
    return sorted(versions, key=lambda v: v.version)


def latest_version(repository: str, model_name: str) -> Optional[ModelVersion]:
    versions = list_versions(repository, model_name)
    return versions[-1] if versions else None


def list_models(repository: str) -> list[str]:
    if not tf.io.gfile.isdir(repository):
        return []
    names = []
    for entry in sorted(tf.io.gfile.listdir(repository)):
        name = entry.rstrip("/")
        if not name.startswith(".") and tf.io.gfile.isdir(_join(repository, name)):
            names.append(name)
    return names


def next_version_number(repository: str, model_name: str, now: Optional[float] = None) -> int:
    """Unix seconds (as TFX's Pusher uses), bumped past any existing version."""
    candidate = int(now if now is not None else time.time())
    existing = list_versions(repository, model_name)
    if existing and existing[-1].version >= candidate:
        candidate = existing[-1].version + 1
    return candidate


def copy_tree(src: str, dst: str, skip_files: tuple[str, ...] = ()) -> None:
    tf.io.gfile.makedirs(dst)
    for dirpath, _dirnames, filenames in tf.io.gfile.walk(src):
        rel = os.path.relpath(dirpath, src) if "://" not in src else dirpath[len(src):].lstrip("/")
        target_dir = dst if rel in ("", ".") else _join(dst, rel)
        tf.io.gfile.makedirs(target_dir)
        for name in filenames:
            if rel in ("", ".") and name in skip_files:
                continue
            tf.io.gfile.copy(_join(dirpath, name), _join(target_dir, name), overwrite=True)


def remove_stale_staging(repository: str, model_name: str) -> list[str]:
    base = model_dir(repository, model_name)
    removed = []
    if tf.io.gfile.isdir(base):
        for entry in tf.io.gfile.listdir(base):
            name = entry.rstrip("/")
            if name.startswith(STAGING_PREFIX):
                tf.io.gfile.rmtree(_join(base, name))
                removed.append(name)
    return removed


def publish_version(
    saved_model_dir: str,
    repository: str,
    model_name: str,
    record: Optional[dict] = None,
    version: Optional[int] = None,
) -> ModelVersion:
    """Copies a SavedModel into the repository as a new version, atomically.

    ``record`` (e.g. the source model and its metrics) is stored as
    ``assets.extra/textops_push.json`` inside the version.
    """
    if not is_complete_version(saved_model_dir):
        raise FileNotFoundError(f"{saved_model_dir} holds no saved_model.pb; nothing to publish")
    base = model_dir(repository, model_name)
    tf.io.gfile.makedirs(base)
    remove_stale_staging(repository, model_name)
    number = version if version is not None else next_version_number(repository, model_name)
    final = _join(base, str(number))
    if tf.io.gfile.exists(final):
        raise FileExistsError(f"model version {final} already exists; versions are immutable")
    staging = _join(base, f"{STAGING_PREFIX}{number}-{uuid.uuid4().hex[:8]}")
    try:
        # saved_model.pb goes last: a server polling an object store never sees a model
        # without its variables.
        copy_tree(saved_model_dir, staging, skip_files=_SAVED_MODEL_FILES)
        if record is not None:
            extra = _join(staging, "assets.extra")
            tf.io.gfile.makedirs(extra)
            with tf.io.gfile.GFile(_join(extra, PUSH_RECORD), "w") as f:
                json.dump({**record, "version": number}, f, indent=2, sort_keys=True)
        for name in _SAVED_MODEL_FILES:
            src = _join(saved_model_dir, name)
            if tf.io.gfile.exists(src):
                tf.io.gfile.copy(src, _join(staging, name), overwrite=True)
        tf.io.gfile.rename(staging, final, overwrite=False)
    except BaseException:
        if tf.io.gfile.exists(staging):
            tf.io.gfile.rmtree(staging)
        raise
    return ModelVersion(model_name, number, final)


def read_push_record(version_path: str) -> dict:
    path = _join(version_path, "assets.extra", PUSH_RECORD)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
