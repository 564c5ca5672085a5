"""The pipeline's fixed costs that are ours: Beam arguments and Transform's optional passes."""

from __future__ import annotations

import pytest
from tfx.utils import dependency_utils

from tests.support.data import write_csv
from textops.data import discover
from textops.pipelines import beam_options, kubeflow_runner
from textops.pipelines.pipeline import Locations, create_pipeline
from textops.settings import load_settings


def test_tfx_builds_no_package_for_the_direct_runner(monkeypatch):
    """TFX's own check (run by every Beam executor) returns the local args as they are: it would
    otherwise copy tfx/ and run `setup.py sdist` per component for workers that never use it."""
    built = []
    monkeypatch.setattr(dependency_utils, "build_ephemeral_package", lambda: built.append(1) or "/x.tar.gz")
    args = beam_options.direct_runner_args(load_settings(None, []).beam.pipeline_args())
    assert dependency_utils.make_beam_dependency_flags(args) == args
    assert built == []
    # The control: without it TFX does build the package.
    plain = load_settings(None, []).beam.pipeline_args()
    assert dependency_utils.make_beam_dependency_flags(plain) == [*plain, "--extra_package=/x.tar.gz"]
    assert built == [1]


LOCAL = f"--runner={beam_options.LOCAL_RUNNER}"
FLAG = beam_options.LOCAL_ENVIRONMENT_FLAG


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--direct_running_mode=multi_processing", "--direct_num_workers=0"],
         ["--direct_running_mode=multi_processing", "--direct_num_workers=0", LOCAL, FLAG]),
        (["--runner=DirectRunner"], [LOCAL, FLAG]),
        (["--runner", "apache_beam.runners.direct.direct_runner.DirectRunner", "--x=1"], ["--x=1", LOCAL, FLAG]),
        (["--runner=BundleBasedDirectRunner"], ["--runner=BundleBasedDirectRunner", FLAG]),  # chosen by name: kept
        (["--runner=PrismRunner"], ["--runner=PrismRunner"]),
        (["--runner=DataflowRunner", "--project=p"], ["--runner=DataflowRunner", "--project=p"]),  # remote workers need the package
        (["--runner", "FlinkRunner"], ["--runner", "FlinkRunner"]),
        (["--direct_running_mode=in_memory", "--extra_package=/my/pkg.tar.gz"],  # the user's own package
         ["--direct_running_mode=in_memory", "--extra_package=/my/pkg.tar.gz", LOCAL]),
        (["--requirements_file=req.txt"], ["--requirements_file=req.txt", LOCAL]),
    ],
)
def test_direct_runs_get_the_local_runner_and_no_package(args, expected):
    out = beam_options.direct_runner_args(args)
    assert out == expected
    assert beam_options.direct_runner_args(out) == out  # applying it again changes nothing


@pytest.mark.parametrize("mode", ["in_memory", "multi_processing"])
def test_the_local_runner_runs_beam_pipelines_without_trying_prism(monkeypatch, mode):
    """What the DirectRunner would run on Prism first (here a download from GitHub, then a fallback)
    runs on its FnApiRunner at once; subprocess workers (multi_processing) get the options too."""
    import apache_beam as beam
    from apache_beam.runners.portability import prism_runner
    from apache_beam.testing.util import assert_that, equal_to

    tried = []  # the DirectRunner catches any error of its Prism attempt: record, do not raise
    monkeypatch.setattr(prism_runner.PrismRunner, "run_pipeline", lambda *a, **k: tried.append(1) or 1 / 0)
    args = beam_options.direct_runner_args([f"--direct_running_mode={mode}", "--direct_num_workers=1"])
    with beam.Pipeline(argv=args) as p:
        assert type(p.runner).__name__ == "DirectFnApiRunner"
        counts = p | beam.Create(["a b", "b", "c b"]) | beam.FlatMap(str.split) | beam.combiners.Count.PerElement()
        assert_that(counts, equal_to([("a", 1), ("b", 3), ("c", 1)]))
    assert tried == []


def test_kubeflow_direct_runner_pods_build_no_package():
    direct = kubeflow_runner.beam_args(load_settings(None, []).kubeflow.beam, "gs://b/root", "img:1")
    assert beam_options.LOCAL_ENVIRONMENT_FLAG in direct
    dataflow = kubeflow_runner.beam_args(
        load_settings(None, ["kubeflow.beam.runner=dataflow", "kubeflow.beam.options={project: p, region: r}"]).kubeflow.beam,
        "gs://b/root",
        "img:1",
    )
    assert beam_options.LOCAL_ENVIRONMENT_FLAG not in dataflow and "--sdk_container_image=img:1" in dataflow


@pytest.mark.parametrize("overrides, disabled", [((), 1), (("transform.statistics=true",), 0)])
def test_transform_statistics_follow_the_setting(tmp_path, overrides, disabled):
    write_csv(tmp_path / "data" / "train.csv", [("late parcel", "shipping"), ("charged twice", "billing")])
    write_csv(tmp_path / "data" / "test.csv", [("late parcel", "shipping"), ("charged twice", "billing")])
    settings = load_settings(None, list(overrides))
    pipeline = create_pipeline(
        settings, discover(str(tmp_path / "data"), settings.data), Locations(str(tmp_path / "root"), str(tmp_path / "m"))
    )
    transform = next(c for c in pipeline.components if c.id == "Transform")
    assert transform.exec_properties["disable_statistics"] == disabled
    assert ("pre_transform_stats" in transform.outputs) == (not disabled)
