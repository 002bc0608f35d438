#!/usr/bin/env bash
# Checks the Helm chart (charts/plinth-operator) for real against the local stack's API server:
#   - the chart's CRD is the generated one; `helm lint --strict` (default and all-options values)
#   - the rendered manifests match the values and files/rbac-rules.yaml (assert_render.py)
#   - `helm template --include-crds | kubectl apply --dry-run=server` (default and all options)
#   - bad values fail at render time (values.schema.json)
#   - `helm install` into a fresh namespace: every object exists, RBAC equals rbac-rules.yaml,
#     and the ServiceAccount's identity can do exactly what the operator needs (kubectl auth can-i)
#   - the operator binary, run as that ServiceAccount (its token, the chart's RBAC, the chart's
#     environment), takes the Lease and reconciles examples/platform.yaml to Ready
# Pods never run here (no kubelet, no controller-manager): nothing waits for the Deployment.
# Everything it creates — namespaces, cluster-scoped RBAC, a CRD it had to install — is removed.
#
#   tests/chart/check.sh                         (tests/run calls it)
#   PLINTH_OPERATOR_BIN=path tests/chart/check.sh   use this operator binary instead of building it
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

STACK_ENV=${PLINTH_STACK_DIR:-.stack}/env
if [[ ! -f $STACK_ENV ]]; then
	echo "chart: start the local stack first: tests/stack/up" >&2
	exit 1
fi
# shellcheck source=/dev/null
. "$STACK_ENV"
# shellcheck source=tests/stack/lib.sh
source tests/stack/lib.sh
PY="$(venv_dir)/bin/python"
CHART=charts/plinth-operator
HERE=tests/chart
RELEASE=plinth-operator
SUFFIX="$$-$(date +%s)"
NS_DRY="chart-dry-$SUFFIX"
NS_INSTALL="chart-install-$SUFFIX"
NS_PLATFORMS="chart-platforms-$SUFFIX"
WORK=$(mktemp -d)
CRD_NAME=dataplatforms.plinth.dev
MONITOR_CRD=servicemonitors.monitoring.coreos.com
created_crd=false
created_monitor_crd=false
operator_pid=""
passed=0
failed=0

pass() {
	passed=$((passed + 1))
	printf '  ok    %s\n' "$1"
}
fail_check() {
	failed=$((failed + 1))
	printf '  FAIL  %s\n' "$1"
	[[ -s $WORK/out ]] && sed 's/^/        /' "$WORK/out" | tail -n 25
	return 0
}
# check NAME CMD...: runs CMD, output kept for the failure report.
check() {
	local name=$1
	shift
	if "$@" >"$WORK/out" 2>&1; then pass "$name"; else fail_check "$name"; fi
}
# check_fails NAME CMD...: CMD must fail, with a schema error.
check_fails() {
	local name=$1
	shift
	if "$@" >"$WORK/out" 2>&1; then
		fail_check "$name (it succeeded)"
	elif grep -q "don't meet the specifications of the schema" "$WORK/out"; then
		pass "$name"
	else
		fail_check "$name (failed, but not on the schema)"
	fi
}

# Without a namespace controller a deleted namespace stays Terminating with its objects: delete
# what is in it, then finalize it, as kube-controller-manager would.
purge_namespace() {
	local ns=$1 types
	kubectl get namespace "$ns" >/dev/null 2>&1 || return 0
	for dp in $(kubectl get dataplatforms -n "$ns" -o name 2>/dev/null); do
		kubectl patch -n "$ns" "$dp" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
	done
	types=$(kubectl api-resources --namespaced --verbs=list,delete -o name 2>/dev/null | paste -sd, -)
	[[ -n $types ]] && kubectl delete "$types" --all -n "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
	kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
	kubectl get namespace "$ns" -o json 2>/dev/null |
		"$PY" -c 'import json,sys; ns=json.load(sys.stdin); ns["spec"]["finalizers"]=[]; print(json.dumps(ns))' |
		kubectl replace --raw "/api/v1/namespaces/$ns/finalize" -f - >/dev/null 2>&1 || true
}

finished=false
cleanup() {
	local status=$?
	set +e
	if ! $finished; then
		echo "  FAIL  the script stopped early (exit $status); see the output above"
		echo "chart: $passed passed, $((failed + 1)) failed"
	fi
	if [[ -n $operator_pid ]] && kill -0 "$operator_pid" 2>/dev/null; then
		kill "$operator_pid"
		wait "$operator_pid" 2>/dev/null
	fi
	helm uninstall "$RELEASE" -n "$NS_INSTALL" >/dev/null 2>&1
	for ns in "$NS_PLATFORMS" "$NS_INSTALL" "$NS_DRY"; do purge_namespace "$ns"; done
	# Cluster-scoped RBAC of the release, in case uninstall did not get to run.
	kubectl delete clusterrole,clusterrolebinding -l "app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/name=plinth-operator" \
		--field-selector "metadata.name=$RELEASE-$NS_INSTALL" --ignore-not-found >/dev/null 2>&1
	$created_crd && kubectl delete crd "$CRD_NAME" --ignore-not-found >/dev/null 2>&1
	$created_monitor_crd && kubectl delete crd "$MONITOR_CRD" --ignore-not-found >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT

kubectl get --raw /readyz >/dev/null 2>&1 || {
	echo "chart: the API server does not answer; start the local stack first: tests/stack/up" >&2
	exit 1
}

echo "-- static"
check "the chart's CRD is the generated one (charts/sync-crd.sh --check)" charts/sync-crd.sh --check
check "helm lint --strict (default values)" helm lint --strict "$CHART"
check "helm lint --strict (all options)" helm lint --strict "$CHART" -f "$HERE/values-options.yaml"
render_asserts() {
	helm template "$RELEASE" "$CHART" -n "$NS_DRY" "${@:2}" >"$WORK/rendered.yaml" &&
		"$PY" "$HERE/assert_render.py" "$CHART" "$1" <"$WORK/rendered.yaml"
}
check "render matches values and rbac-rules.yaml (default values)" render_asserts "$CHART/values.yaml"
check "render matches values and rbac-rules.yaml (all options)" render_asserts "$HERE/values-options.yaml" -f "$HERE/values-options.yaml"
printf 'replicas: 1\nnetworkPolicy: {enabled: false}\nserviceAccount: {create: false, name: existing}\n' >"$WORK/minimal.yaml"
check "render with one replica, no NetworkPolicy, an existing ServiceAccount" render_asserts "$WORK/minimal.yaml" -f "$WORK/minimal.yaml"

echo "-- bad values fail at render"
check_fails "replicas=-1" helm template "$RELEASE" "$CHART" --set replicas=-1
check_fails "replicas is a string" helm template "$RELEASE" "$CHART" --set-string replicas=two
check_fails "image.pullPolicy outside the enum" helm template "$RELEASE" "$CHART" --set image.pullPolicy=Sometimes
check_fails "operator.logFormat outside the enum" helm template "$RELEASE" "$CHART" --set operator.logFormat=xml
check_fails "a misspelt top-level key" helm template "$RELEASE" "$CHART" --set replica=2
check_fails "operator.resyncSeconds below its range" helm template "$RELEASE" "$CHART" --set operator.resyncSeconds=1
check_fails "serviceAccount.create=false without a name" helm template "$RELEASE" "$CHART" --set serviceAccount.create=false
check_fails "aws.region not a region name" helm template "$RELEASE" "$CHART" --set aws.region=Mars

echo "-- server-side dry run"
kubectl create namespace "$NS_DRY" >/dev/null
if ! kubectl get crd "$MONITOR_CRD" >/dev/null 2>&1; then
	created_monitor_crd=true
	kubectl apply -f "$HERE/servicemonitor-crd.yaml" >/dev/null
	kubectl wait --for=condition=Established "crd/$MONITOR_CRD" --timeout=30s >/dev/null
fi
dry_run() {
	helm template "$RELEASE" "$CHART" -n "$NS_DRY" --include-crds "$@" >"$WORK/dry.yaml" &&
		kubectl apply --dry-run=server -f "$WORK/dry.yaml"
}
check "helm template --include-crds | kubectl apply --dry-run=server (default values)" dry_run
check "helm template --include-crds | kubectl apply --dry-run=server (all options, ServiceMonitor)" \
	dry_run -f "$HERE/values-options.yaml"

echo "-- helm install"
if ! kubectl get crd "$CRD_NAME" >/dev/null 2>&1; then
	created_crd=true # helm installs it from the chart's crds/; it is removed at the end
fi
kubectl create namespace "$NS_INSTALL" >/dev/null
install() {
	helm install "$RELEASE" "$CHART" -n "$NS_INSTALL" --wait=false \
		--set "aws.endpointUrl=$AWS_ENDPOINT_URL" --set "operator.watchNamespace=$NS_PLATFORMS"
}
check "helm install --wait=false into $NS_INSTALL" install
check "the CRD is installed and established" kubectl wait --for=condition=Established "crd/$CRD_NAME" --timeout=30s
FULL=$RELEASE
CLUSTER_NAME=$RELEASE-$NS_INSTALL
for obj in "deployment/$FULL" "serviceaccount/$FULL" "role/$FULL-lease" "rolebinding/$FULL-lease" \
	"service/$FULL-metrics" "poddisruptionbudget/$FULL" "networkpolicy/$FULL"; do
	check "$obj exists" kubectl get -n "$NS_INSTALL" "$obj"
done
for obj in "clusterrole/$CLUSTER_NAME" "clusterrolebinding/$CLUSTER_NAME"; do
	check "$obj exists" kubectl get "$obj"
done
rules_equal() { # KIND NAME KEY [NS]
	kubectl get "$1" "$2" ${4:+-n "$4"} -o json >"$WORK/obj.json" &&
		"$PY" - "$WORK/obj.json" "$CHART/files/rbac-rules.yaml" "$3" <<-'PYEOF'
			import json, sys, yaml
			got = json.load(open(sys.argv[1]))["rules"]
			want = yaml.safe_load(open(sys.argv[2]))[sys.argv[3]]
			if got != want:
			    sys.exit(f"rules differ:\n got  {json.dumps(got)}\n want {json.dumps(want)}")
		PYEOF
}
check "ClusterRole rules == rbac-rules.yaml clusterRules (from the API server)" rules_equal clusterrole "$CLUSTER_NAME" clusterRules
check "Role rules == rbac-rules.yaml leaseRules (from the API server)" rules_equal role "$FULL-lease" leaseRules "$NS_INSTALL"
check "the Deployment asks for 2 replicas" \
	test "$(kubectl get -n "$NS_INSTALL" "deployment/$FULL" -o jsonpath='{.spec.replicas}')" = 2

echo "-- the ServiceAccount's permissions (kubectl auth can-i --as)"
SA_USER="system:serviceaccount:$NS_INSTALL:$FULL"
can() { [[ $(kubectl auth can-i --as="$SA_USER" "$@" 2>/dev/null) == yes ]]; }
cannot() { ! can "$@"; }
check "can watch dataplatforms in every namespace" can watch dataplatforms.plinth.dev --all-namespaces
check "can patch dataplatforms (finalizer)" can patch dataplatforms.plinth.dev -n "$NS_PLATFORMS"
check "can patch dataplatforms/status" can patch dataplatforms.plinth.dev --subresource=status -n "$NS_PLATFORMS"
check "can create events.k8s.io events in a platform namespace" can create events.events.k8s.io -n "$NS_PLATFORMS"
check "can update its Lease in the release namespace" can update leases.coordination.k8s.io -n "$NS_INSTALL"
check "cannot touch Leases elsewhere" cannot create leases.coordination.k8s.io -n default
check "cannot delete or create dataplatforms" cannot delete dataplatforms.plinth.dev -n "$NS_PLATFORMS"
check "cannot read secrets" cannot get secrets -n "$NS_INSTALL"
check "cannot edit its own RBAC" cannot update clusterroles.rbac.authorization.k8s.io

echo "-- the operator, as that ServiceAccount, reconciles examples/platform.yaml"
operator_bin=${PLINTH_OPERATOR_BIN:-}
if [[ -z $operator_bin ]]; then
	export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/plinth/target}
	cargo build --quiet --locked -p plinth-operator --bin plinth-operator
	operator_bin=$CARGO_TARGET_DIR/debug/plinth-operator
fi
[[ -x $operator_bin ]] || {
	echo "chart: no operator binary at $operator_bin" >&2
	exit 1
}
kubectl create namespace "$NS_PLATFORMS" >/dev/null
# A kubeconfig holding only the ServiceAccount's token (the API server and its CA from the stack).
kubectl config view --raw --minify --flatten >"$WORK/sa.kubeconfig"
token=$(kubectl create token "$FULL" -n "$NS_INSTALL" --duration=1h)
KUBECONFIG=$WORK/sa.kubeconfig kubectl config set-credentials chart-sa --token="$token" >/dev/null
KUBECONFIG=$WORK/sa.kubeconfig kubectl config set-context --current --user=chart-sa >/dev/null
check "the token is the ServiceAccount's identity" \
	test "$(KUBECONFIG=$WORK/sa.kubeconfig kubectl auth whoami -o jsonpath='{.status.userInfo.username}')" = "$SA_USER"
# The installed Deployment's environment (values, not field references), with the pod's fields
# filled in and the metrics server on a free local port.
kubectl get -n "$NS_INSTALL" "deployment/$FULL" -o json |
	"$PY" -c 'import json,shlex,sys
for e in json.load(sys.stdin)["spec"]["template"]["spec"]["containers"][0]["env"]:
    if "value" in e: print("export " + e["name"] + "=" + shlex.quote(e["value"]))' >"$WORK/operator.env"
metrics_port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
(
	# shellcheck source=/dev/null
	. "$WORK/operator.env"
	export KUBECONFIG=$WORK/sa.kubeconfig POD_NAME=chart-check-0 POD_NAMESPACE=$NS_INSTALL
	export PLINTH_METRICS_ADDR=127.0.0.1:$metrics_port
	exec "$operator_bin"
) >"$WORK/operator.log" 2>&1 &
operator_pid=$!
readyz() {
	for _ in $(seq 60); do
		curl -fsS "http://127.0.0.1:$metrics_port/readyz" && return 0
		kill -0 "$operator_pid" 2>/dev/null || { tail -n 20 "$WORK/operator.log"; return 1; }
		sleep 0.5
	done
	tail -n 20 "$WORK/operator.log"
	return 1
}
check "the operator answers /readyz (API server reached, CRD found)" readyz
# The example's certificate ARN exists nowhere; the HTTPS listener needs one the emulator's ACM
# knows (like AWS, it refuses a listener on an unknown certificate).
certificate=$("$PY" -c 'import os, boto3
print(boto3.client("acm", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).request_certificate(DomainName="ingest.example.com")["CertificateArn"])')
sed -e "s/^  namespace: data-team\$/  namespace: $NS_PLATFORMS/" \
	-e "s|^\(    certificateArn:\).*|\1 $certificate|" examples/platform.yaml >"$WORK/platform.yaml"
check "examples/platform.yaml applies" kubectl apply -f "$WORK/platform.yaml"
ready() {
	kill -0 "$operator_pid" 2>/dev/null || { tail -n 20 "$WORK/operator.log"; return 1; }
	kubectl wait -n "$NS_PLATFORMS" --for=condition=Ready dataplatform/ingest --timeout=90s ||
		{ tail -n 20 "$WORK/operator.log"; return 1; }
}
check "the platform reaches Ready" ready
check "the operator holds the Lease in the release namespace" \
	test "$(kubectl get lease -n "$NS_INSTALL" "$FULL" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" = chart-check-0
check "the platform carries the teardown finalizer" \
	test -n "$(kubectl get -n "$NS_PLATFORMS" dataplatform/ingest -o jsonpath='{.metadata.finalizers}' 2>/dev/null)"
check "events about the platform were recorded" \
	test -n "$(kubectl get events.events.k8s.io -n "$NS_PLATFORMS" --field-selector regarding.name=ingest -o name 2>/dev/null)"
check "the platform is deleted (finalizer released by the operator)" \
	kubectl delete -n "$NS_PLATFORMS" dataplatform/ingest --timeout=60s
kill "$operator_pid" 2>/dev/null && wait "$operator_pid" 2>/dev/null || true
operator_pid=""

echo "-- helm uninstall"
check "helm uninstall" helm uninstall "$RELEASE" -n "$NS_INSTALL"
check "the cluster-scoped RBAC is gone" \
	test -z "$(kubectl get clusterrole,clusterrolebinding --ignore-not-found -o name --field-selector "metadata.name=$CLUSTER_NAME")"

finished=true
echo "chart: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
