#!/usr/bin/env bash
# Re-pin this helper module to another Kubernetes release, e.g.
#   testenv/go/k8s/update.sh v1.36.4
# The staging `replace` block is generated offline from k8s.io/kubernetes's own
# go.mod (every k8s.io/* module it requires at v0.0.0 is replaced by the
# published v0.<minor>.<patch>); etcd is pinned to the go.etcd.io/etcd/server/v3
# version that k8s.io/kubernetes itself requires. Needs only the Go module proxy.
set -euo pipefail
V=${1:?usage: update.sh v1.X.Y}
cd "$(dirname "$0")"
export GOTOOLCHAIN=local CGO_ENABLED=0

gomod=$(go mod download -json "k8s.io/kubernetes@$V" | python3 -c '
import json, sys
d = json.load(sys.stdin)
if d.get("Error"):
    sys.exit(d["Error"])
print(d["GoMod"])')
etcd=$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' "$gomod")
staging=$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$gomod" | sort -u)
go_line=$(grep -m1 '^go ' "$gomod")
godebug=$(grep '^godebug ' "$gomod" | sort -u || true)

{
	echo "// Helper module that pins the Kubernetes control-plane binaries used by"
	echo "// meshfleet's integration tests (see ../../README.md). Nothing here is"
	echo "// imported by meshfleet itself; testenv/run builds the tools listed below."
	echo "// Regenerate with ./update.sh v1.X.Y."
	echo "module meshfleet.test/testenv/k8s"
	echo
	echo "$go_line"
	if [ -n "$godebug" ]; then
		echo
		echo "$godebug"
	fi
	echo
	echo "// Every staging module that k8s.io/kubernetes requires at v0.0.0, pinned to"
	echo "// the published v0.<minor>.<patch> matching the k8s.io/kubernetes version."
	echo "replace ("
	for m in $staging; do
		printf '\t%s => %s v0.%s\n' "$m" "$m" "${V#v1.}"
	done
	echo ")"
} >go.mod
rm -f go.sum

go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$V" "k8s.io/kubernetes/cmd/kube-controller-manager@$V" \
	"k8s.io/kubernetes/cmd/kube-scheduler@$V" "k8s.io/kubernetes/cmd/kubectl@$V" \
	"go.etcd.io/etcd/server/v3@$etcd"
go mod tidy
echo "pinned k8s.io/kubernetes $V, go.etcd.io/etcd/server/v3 $etcd"
