"""Two tiny TFX executors for the entrypoint's tests: one that writes its output, one that fails."""

from __future__ import annotations

import os

from tfx.dsl.components.base import base_executor


class WritesExamples(base_executor.BaseExecutor):
    """Reads its input's files and writes one file into its output (like any TFX executor)."""

    def Do(self, input_dict, output_dict, exec_properties):
        (source,) = input_dict["examples"]
        (target,) = output_dict["statistics"]
        names = sorted(os.listdir(source.uri))
        os.makedirs(os.path.join(target.uri, "Split-train"), exist_ok=True)
        with open(os.path.join(target.uri, "Split-train", "seen.txt"), "w") as f:
            f.write(f"{exec_properties['note']}:{','.join(names)}:{type(source).__name__}")
        target.set_string_custom_property("note", exec_properties["note"])


class Fails(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties):
        raise RuntimeError("the component's own error: no rows in split 'train'")
