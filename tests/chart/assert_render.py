"""Checks a rendered plinth-operator chart (multi-document YAML on stdin) against the values it
was rendered with and against files/rbac-rules.yaml.

    helm template r charts/plinth-operator -f X.yaml | python assert_render.py CHART [X.yaml ...]

Prints one line per failed assertion and exits 1 when there is any.
"""

import copy
import sys
from pathlib import Path

import yaml


def merge(base, over):
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def main() -> int:
    chart = Path(sys.argv[1])
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for extra in sys.argv[2:]:
        values = merge(values, yaml.safe_load(Path(extra).read_text()))
    rules = yaml.safe_load((chart / "files/rbac-rules.yaml").read_text())
    docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    failures = []

    def check(ok, what):
        if not ok:
            failures.append(what)

    def one(kind):
        found = by_kind.get(kind, [])
        check(len(found) == 1, f"exactly one {kind} (found {len(found)})")
        return found[0] if found else {}

    dep, svc = one("Deployment"), one("Service")
    if values["serviceAccount"]["create"]:
        sa = one("ServiceAccount")
    else:
        check("ServiceAccount" not in by_kind, "no ServiceAccount when serviceAccount.create=false")
        sa = {"metadata": {"name": values["serviceAccount"]["name"]}, "automountServiceAccountToken": False}
    check(one("ClusterRole").get("rules") == rules["clusterRules"],
          "ClusterRole rules == files/rbac-rules.yaml clusterRules")
    check(one("Role").get("rules") == rules["leaseRules"],
          "Role rules == files/rbac-rules.yaml leaseRules")
    crb, rb = one("ClusterRoleBinding"), one("RoleBinding")
    sa_name = sa.get("metadata", {}).get("name")
    for binding in (crb, rb):
        check([s.get("name") for s in binding.get("subjects", [])] == [sa_name],
              f"{binding.get('kind')} binds the ServiceAccount {sa_name}")
    check(sa.get("automountServiceAccountToken") is False, "ServiceAccount does not automount")
    for key, value in values["serviceAccount"]["annotations"].items() if "ServiceAccount" in by_kind else ():
        check(sa["metadata"].get("annotations", {}).get(key) == value,
              f"ServiceAccount annotation {key}")

    spec = dep.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    check(spec.get("replicas") == values["replicas"], "Deployment replicas from values")
    check(pod.get("serviceAccountName") == sa_name, "pod runs as the chart's ServiceAccount")
    check(pod.get("automountServiceAccountToken") is True, "pod mounts its API token")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True, "pod runAsNonRoot")
    check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccomp RuntimeDefault")
    (ctr,) = pod.get("containers", [{}])
    sc = ctr.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities dropped")
    check(sc.get("runAsNonRoot") is True, "container runAsNonRoot")
    check(sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccomp")
    image = values["image"]
    want_image = (f"{image['repository']}@{image['digest']}" if image["digest"]
                  else f"{image['repository']}:{image['tag'] or '0.1.0'}")
    check(ctr.get("image") == want_image, f"image {want_image}")
    check(ctr.get("imagePullPolicy") == image["pullPolicy"], "imagePullPolicy from values")
    check(ctr.get("resources") == values["resources"], "resources from values")
    port = values["operator"]["metricsPort"]
    check(ctr.get("ports") == [{"name": "http-metrics", "containerPort": port, "protocol": "TCP"}],
          "container port from operator.metricsPort")
    check(ctr.get("livenessProbe", {}).get("httpGet") == {"path": "/healthz", "port": "http-metrics"},
          "liveness probe GET /healthz")
    check(ctr.get("readinessProbe", {}).get("httpGet") == {"path": "/readyz", "port": "http-metrics"},
          "readiness probe GET /readyz")

    env = {e["name"]: e for e in ctr.get("env", [])}
    op = values["operator"]
    field = lambda name: env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(field("POD_NAME") == "metadata.name", "POD_NAME from metadata.name")
    check(field("POD_NAMESPACE") == "metadata.namespace", "POD_NAMESPACE (Lease) from metadata.namespace")
    want = {
        "PLINTH_RESYNC_SECONDS": str(op["resyncSeconds"]),
        "PLINTH_LEASE_SECONDS": str(op["leaseSeconds"]),
        "PLINTH_METRICS_ADDR": f"0.0.0.0:{port}",
        "PLINTH_LOG_FORMAT": op["logFormat"],
        "AWS_REGION": values["aws"]["region"],
        "PLINTH_WATCH_NAMESPACE": op["watchNamespace"] or None,
        "PLINTH_LABEL_SELECTOR": op["labelSelector"] or None,
        "RUST_LOG": op["logLevel"] or None,
        "AWS_ENDPOINT_URL": values["aws"]["endpointUrl"] or None,
    }
    if op["leaseName"]:
        want["PLINTH_LEASE_NAME"] = op["leaseName"]
    for extra in values["extraEnv"]:
        want[extra["name"]] = extra.get("value")
    for name, value in want.items():
        got = env.get(name, {}).get("value")
        check(got == value, f"env {name}={value!r} (got {got!r})")

    selector = spec.get("selector", {}).get("matchLabels", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    check(selector and all(labels.get(k) == v for k, v in selector.items()),
          "pod labels match the Deployment selector")
    check(svc.get("spec", {}).get("selector") == selector, "Service selects the operator pods")
    check(svc.get("spec", {}).get("ports", [{}])[0].get("port") == values["service"]["port"],
          "Service port from values")
    check(svc.get("spec", {}).get("ports", [{}])[0].get("targetPort") == "http-metrics",
          "Service targets the metrics port")
    spread = pod.get("topologySpreadConstraints", [])
    check(spread and all(c.get("labelSelector", {}).get("matchLabels") == selector for c in spread),
          "topology spread constraints select the operator pods")
    if not values["topologySpreadConstraints"]:
        check(all(c["whenUnsatisfiable"] == "ScheduleAnyway" for c in spread), "default spread is soft")
    if not values["affinity"]:
        anti = pod.get("affinity", {}).get("podAntiAffinity", {})
        check("preferredDuringSchedulingIgnoredDuringExecution" in anti
              and "requiredDuringSchedulingIgnoredDuringExecution" not in anti,
              "default anti-affinity is soft")
    else:
        check(pod.get("affinity") == values["affinity"], "affinity from values")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    if values["podDisruptionBudget"]["enabled"] and values["replicas"] > 1:
        check(len(pdbs) == 1, "one PodDisruptionBudget")
        if pdbs:
            check(pdbs[0]["spec"] == {"minAvailable": values["podDisruptionBudget"]["minAvailable"],
                                      "selector": {"matchLabels": selector}},
                  "PDB minAvailable and selector")
    else:
        check(not pdbs, "no PodDisruptionBudget (disabled, or a single replica)")

    policies = by_kind.get("NetworkPolicy", [])
    if values["networkPolicy"]["enabled"]:
        check(len(policies) == 1, "one NetworkPolicy")
        if policies:
            np = policies[0]["spec"]
            check(np["podSelector"] == {"matchLabels": selector}, "NetworkPolicy selects the operator pods")
            check(np["policyTypes"] == ["Ingress"], "NetworkPolicy restricts ingress only")
            (rule,) = np["ingress"]
            check(rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}],
                  "NetworkPolicy admits only the metrics port")
            check(rule.get("from", []) == values["networkPolicy"]["metricsFrom"],
                  "NetworkPolicy sources from networkPolicy.metricsFrom")
    else:
        check(not policies, "no NetworkPolicy when disabled")

    monitors = by_kind.get("ServiceMonitor", [])
    if values["serviceMonitor"]["enabled"]:
        check(len(monitors) == 1, "one ServiceMonitor")
        if monitors:
            mon = monitors[0]
            check(mon["apiVersion"] == "monitoring.coreos.com/v1", "ServiceMonitor apiVersion")
            check(mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(),
                  "ServiceMonitor selects the metrics Service")
            check(mon["spec"]["endpoints"][0]["port"] == "http-metrics", "ServiceMonitor port name")
            for key, value in values["serviceMonitor"]["labels"].items():
                check(mon["metadata"]["labels"].get(key) == value, f"ServiceMonitor label {key}")
    else:
        check(not monitors, "no ServiceMonitor by default")

    for failure in failures:
        print(f"  assertion failed: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
