#!/usr/bin/env bash
# Checks terraform-bootstrap/ for real, offline:
#   - `fmt -check` with terraform, or OpenTofu when terraform is missing (built once from the Go
#     module proxy into ~/.cache/plinth, about 9 minutes cold on two cores);
#   - `init -backend=false` + `validate` against the AWS provider from a local filesystem mirror
#     ($PLINTH_TF_PLUGIN_DIR, default /opt/tf-plugins, laid out as registry.terraform.io/
#     hashicorp/aws/<version>/linux_amd64/): the provider registries are out of reach here, so
#     without a mirror this step says so and is skipped;
#   - checkov (pinned, in its own virtualenv under ~/.cache/plinth) over the module: no failed
#     check; each accepted finding is skipped inline with its reason (#checkov:skip=ID:reason);
#   - checkov over policy.json rendered as an aws_iam_policy (checkov cannot read file()): no
#     failed check besides the three the design accepts, skipped below with their reasons.
# Nothing is written into the module: init and validate run on a copy.
#
#   terraform-bootstrap/check.sh          (tests/run calls it)
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
CACHE_DIR=${PLINTH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/plinth}
TOFU_VERSION=v1.10.10
PLUGIN_DIR=${PLINTH_TF_PLUGIN_DIR:-/opt/tf-plugins}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
passed=0
failed=0
pass() {
	passed=$((passed + 1))
	printf '  ok    %s\n' "$1"
}
fail_check() {
	failed=$((failed + 1))
	printf '  FAIL  %s\n' "$1"
	[[ -s $WORK/out ]] && sed 's/^/        /' "$WORK/out" | tail -n 40
	return 0
}
check() {
	local name=$1
	shift
	if "$@" >"$WORK/out" 2>&1; then pass "$name"; else fail_check "$name"; fi
}

# terraform, else OpenTofu built from its Go module (the Go module proxy is reachable; the
# release downloads are not).
tf=$(command -v terraform || true)
flavour=terraform
if [[ -z $tf ]]; then
	flavour=tofu
	tf=$CACHE_DIR/tofu-$TOFU_VERSION/tofu
	if [[ ! -x $tf ]]; then
		echo "  (building OpenTofu $TOFU_VERSION from the Go module proxy into $(dirname "$tf"); ~9 min cold)"
		src=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
		mkdir -p "$(dirname "$tf")"
		(cd "$src" && go build -o "$tf.partial" ./cmd/tofu) && mv "$tf.partial" "$tf"
	fi
fi
# Our own CLI configuration: no checkpoint calls, providers only from the mirror.
export CHECKPOINT_DISABLE=1 TF_IN_AUTOMATION=1 TF_INPUT=0
export TF_CLI_CONFIG_FILE=$WORK/cli.tfrc TF_DATA_DIR=$WORK/data
: >"$TF_CLI_CONFIG_FILE"
echo "-- $flavour ($("$tf" version | head -n1))"
check "$flavour fmt -check -recursive" "$tf" fmt -check -diff -recursive "$HERE"

provider=$(find "$PLUGIN_DIR/registry.terraform.io/hashicorp/aws" -mindepth 2 -maxdepth 2 -type d -name linux_amd64 2>/dev/null | sort -V | tail -n1 || true)
if [[ -n $provider ]]; then
	mirror=$WORK/mirror
	# OpenTofu resolves hashicorp/aws on its own registry's host name: the same provider binary.
	# (Links to the files: the mirror's directory walk does not follow a linked directory.)
	version=$(basename "$(dirname "$provider")")
	for host in registry.terraform.io registry.opentofu.org; do
		mkdir -p "$mirror/$host/hashicorp/aws/$version/linux_amd64"
		ln -s "$provider"/* "$mirror/$host/hashicorp/aws/$version/linux_amd64/"
	done
	cat >"$TF_CLI_CONFIG_FILE" <<-EOF
		provider_installation {
		  filesystem_mirror {
		    path = "$mirror"
		  }
		}
	EOF
	mkdir -p "$WORK/module"
	cp "$HERE"/*.tf "$HERE"/policy.json "$WORK/module/"
	check "$flavour init -backend=false (hashicorp/aws $version from $PLUGIN_DIR)" \
		"$tf" -chdir="$WORK/module" init -backend=false -input=false -no-color
	check "$flavour validate" "$tf" -chdir="$WORK/module" validate -no-color
else
	echo "  SKIP  $flavour validate: it needs the hashicorp/aws provider plugin, which comes from"
	echo "        registry.terraform.io / registry.opentofu.org (out of reach here) unless a"
	echo "        filesystem mirror holds it: set PLINTH_TF_PLUGIN_DIR (found none at $PLUGIN_DIR)"
fi

echo "-- checkov"
requirements=$HERE/requirements-checkov.txt
venv=$CACHE_DIR/venv-checkov-$(sha256sum "$requirements" | cut -c1-12)
if [[ ! -x $venv/bin/checkov ]]; then
	echo "  (installing checkov into $venv)"
	rm -rf "$venv"
	python3 -m venv "$venv"
	"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
fi
# --skip-download: no call to the vendor's platform (no API key, no network); severities then
# are unknown, so every failed check counts.
checkov() { "$venv/bin/checkov" --compact --quiet --skip-download "$@"; }
check "checkov -d terraform-bootstrap: no failed check" checkov -d "$HERE"

# The operator's policy as checkov sees a literal policy. Accepted by design (README.md):
mkdir -p "$WORK/policy"
{
	echo 'resource "aws_iam_policy" "operator" {'
	echo '  #checkov:skip=CKV_AWS_355:EC2/ELB/RDS/SNS/CloudWatch/Secrets Manager writes act on ids AWS picks at create time; Describe*/List* allow no resource scoping. IAM writes are limited to /plinth/, PassRole to EC2, KMS to RDS.'
	echo '  #checkov:skip=CKV_AWS_290:Same cause: the created resources have no ARN before the call; every action is one a driver calls (tests/run checks the recorded calls).'
	echo '  #checkov:skip=CKV_AWS_289:sns:CreateTopic (the alarm topic) is listed as permission management because a topic can be created with a policy; the operator sets none.'
	echo '  name   = "plinth-operator"'
	echo '  policy = <<-JSON'
	cat "$HERE/policy.json"
	echo 'JSON'
	echo '}'
} >"$WORK/policy/policy.tf"
check "checkov over policy.json (as aws_iam_policy): no failed check beyond the three accepted" \
	checkov -d "$WORK/policy"

echo "terraform-bootstrap: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
