"""Beam pipeline arguments for TFX's Beam-based components when Beam's DirectRunner runs them.

TFX's ``BaseBeamExecutor`` (``tfx/dsl/components/base/base_beam_executor.py``) calls
``dependency_utils.make_beam_dependency_flags`` whenever the pipeline has Beam arguments: unless
one of them already names the workers' dependencies (``--extra_packages``, ``--setup_file``,
``--requirements_file``, ``--sdk_container_image``, ...), it copies the whole installed ``tfx``
package to a temporary directory and runs ``setup.py sdist`` on it in a subprocess, once per Beam
component (ExampleGen, StatisticsGen, Transform, Evaluator), and adds ``--extra_package=<sdist>``.
That package is for remote workers (Dataflow, Flink, Spark). Beam's DirectRunner never stages
it: its FnApiRunner runs the pipeline in this process (``in_memory``, ``multi_threading``) or in
``python -m apache_beam.runners.worker.sdk_worker_main`` subprocesses of the same interpreter
(``multi_processing``), with environments built without artifacts
(``apache_beam/runners/portability/fn_api_runner/fn_runner.py``, ``run_pipeline``). Measured
here: 3-6 s per component, a quarter of ``textops demo``'s fixed cost on 2 cores.

``direct_runner_args`` tells TFX that the workers' environment is given: the DirectRunner's
workers are this Python environment, which has TFX and textops installed. It also runs what would
go to Beam's ``DirectRunner`` on ``beam_runner.DirectFnApiRunner``: the DirectRunner's own batch
engine without its attempt to download and start the Prism runner first (``beam_runner``).
"""

from __future__ import annotations

from typing import Sequence

# TFX's list (tfx/utils/dependency_utils.py, make_beam_dependency_flags): any of these set means
# "the workers already have the dependencies" and TFX builds no package.
DEPENDENCY_FLAGS = (
    "extra_packages",
    "extra_package",
    "setup_file",
    "requirements_file",
    "worker_harness_container_image",
    "sdk_container_image",
)
# The runner names that mean Beam's DirectRunner (also the default without ``--runner``): Prism
# first, then the FnApiRunner. They run on LOCAL_RUNNER instead.
PRISM_FIRST_RUNNERS = ("DirectRunner", "SwitchingDirectRunner")
LOCAL_RUNNER = "textops.pipelines.beam_runner.DirectFnApiRunner"
# Runners whose workers are this Python environment (no package to stage for them).
DIRECT_RUNNERS = (*PRISM_FIRST_RUNNERS, "BundleBasedDirectRunner", "FnApiRunner", LOCAL_RUNNER.rsplit(".", 1)[-1])
# Read by no DirectRunner code path (only Docker/portable environments and Dataflow read it); the
# value says where the workers' packages come from in the TFX log line that mentions it.
LOCAL_ENVIRONMENT_FLAG = "--sdk_container_image=none-direct-runner-uses-this-python-environment"


def _flag_name(arg: str) -> str:
    return arg.lstrip("-").split("=", 1)[0].replace("-", "_")


def _runner(args: Sequence[str]) -> tuple[str, set[int]]:
    """The short name of the runner ``args`` select (the last ``--runner`` wins, as in Beam;
    ``DirectRunner`` without one) and the indices of the ``--runner`` arguments (with the value
    after a bare ``--runner``)."""
    runner, positions = "DirectRunner", set()
    for i, arg in enumerate(args):
        if arg.startswith("-") and _flag_name(arg) == "runner":
            positions.add(i)
            if "=" in arg:
                runner = arg.split("=", 1)[1]
            elif i + 1 < len(args):
                runner = args[i + 1]
                positions.add(i + 1)
    return runner.rsplit(".", 1)[-1], positions


def direct_runner_args(args: Sequence[str]) -> list[str]:
    """``args`` for a run on this machine's Python environment. When they select Beam's
    DirectRunner (no ``--runner``, or ``DirectRunner``): ``--runner`` becomes ``LOCAL_RUNNER``.
    When they select any local runner and name no dependency flag of their own:
    ``LOCAL_ENVIRONMENT_FLAG`` is added. Other runners' args (Dataflow, Flink, Spark, Prism
    chosen by name) come back unchanged."""
    args = list(args)
    runner, positions = _runner(args)
    if runner not in DIRECT_RUNNERS:
        return args
    if runner in PRISM_FIRST_RUNNERS:
        args = [a for i, a in enumerate(args) if i not in positions] + [f"--runner={LOCAL_RUNNER}"]
    if not any(_flag_name(a) in DEPENDENCY_FLAGS for a in args if a.startswith("-")):
        args.append(LOCAL_ENVIRONMENT_FLAG)
    return args
