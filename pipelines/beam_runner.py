"""The Beam runner of the local pipeline and of the Kubeflow ``direct`` pods.

Since Beam 2.68 the Python ``DirectRunner`` first tries to run a pipeline on the Prism runner, a
Go binary that it downloads from the Beam release on GitHub into the user's cache
(``apache_beam/runners/direct/direct_runner.py``, ``run_pipeline``), and falls back to its
``FnApiRunner`` only when that fails. For TFX that means, per Beam component (ExampleGen,
StatisticsGen, Transform, Evaluator): a download attempt and a worker pool started for nothing
where the network does not reach GitHub (0.5-2.4 s each, measured in ``textops demo``: ~5 s of
its fixed cost), and where it does, TFX's components run on a different engine than the
one this project is tested on (Prism names its metrics differently and raises other errors).
Beam's advice for pipelines that need the ``FnApiRunner`` is to pin it (apache/beam#34612).

``DirectFnApiRunner`` runs the pipeline on the ``FnApiRunner`` exactly as the ``DirectRunner``
does after its Prism attempt: with the pipeline's options in the provision info, so that
``multi_processing`` workers (subprocesses of this interpreter) get the pickler, the file
systems' options and the log levels the pipeline was built with. ``--direct_running_mode`` and
``--direct_num_workers`` keep their meaning. ``beam_options.direct_runner_args`` selects it.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.direct.direct_runner import DirectRunner
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.portability.portable_runner import JobServiceHandle
from apache_beam.runners.runner import PipelineRunner


class DirectFnApiRunner(PipelineRunner):
    """Beam's DirectRunner without its Prism attempt: batch pipelines on the ``FnApiRunner``."""

    def run_pipeline(self, pipeline, options):
        if options.view_as(StandardOptions).streaming:
            # The FnApiRunner runs batch pipelines only; the DirectRunner picks its streaming engine.
            return DirectRunner().run_pipeline(pipeline, options)
        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        provision_info = fn_runner.ExtendedProvisionInfo(
            beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
        )
        return fn_runner.FnApiRunner(provision_info=provision_info).run_pipeline(pipeline, options)
