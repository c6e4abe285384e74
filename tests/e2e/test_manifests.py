"""The Kubernetes manifests in docker/k8s: built-in kinds validate against Kubernetes' own
schemas (kubernetes-validate, offline), the InferencePool against its CRD, the pieces fit
together, and the container's arguments start a real server."""

from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml

from conftest import MODEL, ROOT, Server

K8S = ROOT / "docker" / "k8s"
VERSION = "1.33.0"


def documents():
    docs = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[(doc["kind"], doc["metadata"]["name"])] = doc
    return docs


DOCS = documents()


@pytest.mark.parametrize("key", [k for k in DOCS if k[0] != "InferencePool"], ids=lambda k: k[0])
def test_builtin_kinds_validate(key):
    kubernetes_validate.validate(DOCS[key], VERSION, strict=True)


def test_inference_pool_validates_against_its_crd():
    crd = yaml.safe_load((K8S / "crds" / "inferencepools.crd.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = version["schema"]["openAPIV3Schema"]
    pool = DOCS[("InferencePool", "lantern")]
    assert pool["apiVersion"] == f'{crd["spec"]["group"]}/v1'
    jsonschema.validate(pool, schema)
    # The schema is strict enough to catch a mistake.
    broken = {**pool, "spec": {**pool["spec"], "targetPorts": []}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_the_pieces_fit_together():
    deploy = DOCS[("Deployment", "lantern")]
    pod = deploy["spec"]["template"]
    labels = pod["metadata"]["labels"]
    container = pod["spec"]["containers"][0]
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    service = DOCS[("Service", "lantern")]
    assert service["spec"]["selector"].items() <= labels.items()
    pool = DOCS[("InferencePool", "lantern")]
    assert pool["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert [p["number"] for p in pool["spec"]["targetPorts"]] == [port]
    hpa = DOCS[("HorizontalPodAutoscaler", "lantern")]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"]
    # Termination outlasts the drain: the preStop pause plus the shutdown grace.
    args = container["args"]
    grace = int(args[args.index("--shutdown-grace-secs") + 1])
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace + pause
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"


def test_the_container_arguments_start_a_server(tmp_path):
    container = DOCS[("Deployment", "lantern")]["spec"]["template"]["spec"]["containers"][0]
    args = list(container["args"])
    args[args.index("--model") + 1] = str(MODEL)
    # The conftest Server adds --port and --threads; drop the manifest's threads.
    i = args.index("--threads")
    del args[i:i + 2]
    s = Server(*args, tmp=tmp_path)
    try:
        assert requests.get(s.base + "/health").json()["status"] == "ok"
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            assert requests.get(s.base + container[probe]["httpGet"]["path"]).status_code == 200
        metrics = requests.get(s.base + "/metrics").text
        assert 'vllm:num_requests_waiting{model_name="smollm2"}' in metrics
    finally:
        s.stop()
