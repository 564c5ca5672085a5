"""The deploy files agree with the server: probe paths exist, the ConfigMap is a valid config."""

from __future__ import annotations

from pathlib import Path

import yaml

from textops.serving.config import ServerConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "serving"


def _docs(name: str) -> list[dict]:
    return list(yaml.safe_load_all((DEPLOY / name).read_text()))


def test_configmap_is_a_valid_server_config():
    (configmap,) = _docs("k8s/configmap.yaml")
    config = ServerConfig.model_validate(yaml.safe_load(configmap["data"]["serving.yaml"]))
    assert config.port == 8501 and config.grpc_port == 8500


def test_probes_use_the_servers_health_endpoints(server):
    (deployment,) = _docs("k8s/deployment.yaml")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    paths = {container[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"/v2/health/live", "/v2/health/ready"}
    for path in paths:  # the running server answers them
        assert server.get(path)[0] == 200
    assert {p["containerPort"] for p in container["ports"]} == {8501, 8500}
    (service,) = _docs("k8s/service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (hpa,) = _docs("k8s/hpa.yaml")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]


def test_kserve_example_serves_the_repository_with_stock_tf_serving():
    (isvc,) = _docs("kserve-inferenceservice.yaml")
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "tensorflow" and model["storageUri"].endswith("/text_classifier")


def test_termination_grace_period_covers_prestop_and_drain():
    """A rolling update must not cut requests: routing stops (preStop) before SIGTERM, and the
    kubelet's SIGKILL comes only after the server's drain and the log flush."""
    (deployment,) = _docs("k8s/deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    pre_stop = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
    (configmap,) = _docs("k8s/configmap.yaml")
    config = ServerConfig.model_validate(yaml.safe_load(configmap["data"]["serving.yaml"]))
    flush_margin = 5  # closing the prediction log (fsync + gzip of the last file)
    assert pre_stop >= 5  # longer than endpoint propagation (kube-proxy, ingress) usually takes
    assert pre_stop + config.drain_timeout_s + flush_margin <= pod["terminationGracePeriodSeconds"]
    assert config.connections.keepalive_timeout_s > 60  # the load balancer, not the pod, closes idle connections


def test_hpa_scales_on_queue_and_inflight_metrics_the_server_exports_through_the_adapter():
    from textops.serving.metrics import ServingMetrics

    (hpa,) = _docs("k8s/hpa.yaml")
    pods_metrics = {m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"}
    assert pods_metrics == {"textops_serving_inflight_requests", "textops_serving_queue_texts"}
    exported = {family.name for family in ServingMetrics().registry.collect()}
    assert pods_metrics <= exported
    (adapter,) = _docs("k8s/prometheus-adapter-rules.yaml")
    rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
    assert {r["name"]["as"] for r in rules} == pods_metrics
    assert all(r["resources"]["overrides"]["pod"] == {"resource": "pod"} for r in rules)
