from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from textops.components.validation import apply_text_contract, check_contract, describe_anomalies


def stats(text: str) -> statistics_pb2.DatasetFeatureStatistics:
    return text_format.Parse(text, statistics_pb2.DatasetFeatureStatistics())


GOOD = """
num_examples: 10
features { path { step: "text" } type: STRING string_stats { common_stats { num_non_missing: 10 } unique: 10 } }
features { path { step: "label" } type: STRING string_stats { common_stats { num_non_missing: 10 } unique: 2 } }
"""


def test_good_data_has_no_problems():
    assert check_contract({"train": stats(GOOD), "eval": stats(GOOD)}, "text", "label") == []


def test_missing_text_column_lists_the_columns_found():
    s = stats('num_examples: 5 features { path { step: "body" } type: STRING } features { path { step: "label" } type: STRING string_stats { unique: 2 } }')
    (problem,) = check_contract({"train": s}, "text", "label")
    assert "text column 'text' is missing" in problem and "body, label" in problem and "data.text_column" in problem


def test_wrong_type_missing_values_empty_split_and_single_label():
    s = stats(
        """
        num_examples: 8
        features { path { step: "text" } type: INT num_stats { common_stats { num_missing: 0 } } }
        features { path { step: "label" } type: STRING string_stats { common_stats { num_missing: 3 } unique: 1 } }
        """
    )
    problems = check_contract({"train": s, "eval": stats("num_examples: 0")}, "text", "label")
    text = "\n".join(problems)
    assert "holds integer values, not text" in text
    assert "3 of 8 examples have an empty or missing label" in text
    assert "1 distinct value(s)" in text
    assert "split 'eval' has no examples" in text


def test_empty_labels_are_counted_as_missing_but_empty_texts_are_allowed():
    # CsvExampleGen writes an empty field as a feature with no value, which TFDV does not count as
    # missing: 2 of 10 labels empty here; an empty text is a valid (if useless) example.
    s = stats(
        """
        num_examples: 10
        features { path { step: "text" } type: STRING string_stats { common_stats {
          num_non_missing: 10 min_num_values: 0 max_num_values: 1 tot_num_values: 9 } unique: 9 } }
        features { path { step: "label" } type: STRING string_stats { common_stats {
          num_non_missing: 10 min_num_values: 0 max_num_values: 1 tot_num_values: 8 } unique: 2 } }
        """
    )
    (problem,) = check_contract({"train": s}, "text", "label")
    assert "2 of 10 examples have an empty or missing label ('label')" in problem


def test_float_labels_are_rejected():
    s = stats(GOOD.replace('step: "label" } type: STRING', 'step: "label" } type: FLOAT'))
    assert any("floating-point" in p for p in check_contract({"train": s}, "text", "label"))


def test_describe_anomalies_names_split_column_and_reason():
    a = anomalies_pb2.Anomalies()
    info = a.anomaly_info["label"]
    info.short_description = "Unexpected string values"
    info.reason.add(description="Examples contain values missing from the schema: zebra (~10%).")
    (line,) = describe_anomalies("eval", a)
    assert line.startswith("split 'eval', column 'label': Unexpected string values") and "zebra" in line


def test_text_contract_drops_the_text_domain_and_requires_both_columns():
    schema = text_format.Parse(
        """
        feature { name: "text" type: BYTES domain: "text" presence { min_fraction: 0.5 } }
        feature { name: "label" type: BYTES domain: "label" }
        string_domain { name: "text" value: "a" value: "b" }
        string_domain { name: "label" value: "pos" value: "neg" }
        """,
        schema_pb2.Schema(),
    )
    apply_text_contract(schema, "text", "label")
    text, label = schema.feature
    assert not text.HasField("domain") and text.presence.min_fraction == 1.0
    assert label.domain == "label" and label.presence.min_fraction == 1.0
    assert [d.name for d in schema.string_domain] == ["label"]


def test_more_classes_than_max_classes_are_refused_in_the_pipeline_gate():
    """Remote data gets no preflight: the gate counts the training labels instead."""
    many = stats(GOOD.replace("unique: 2 }", "unique: 1500 }"))
    assert check_contract({"train": many}, "text", "label") == []  # no limit given
    (problem,) = check_contract({"train": many, "eval": stats(GOOD)}, "text", "label", max_classes=1000)
    assert "split 'train'" in problem and "1,500 distinct classes, more than data.max_classes (1,000)" in problem
    assert check_contract({"train": many}, "text", "label", max_classes=1500) == []
