// Package deploy tests what operators deploy keygate with, against the
// real programs: the nginx and Caddy forward-auth recipes under deploy/
// (used as committed, only their addresses changed), the Python, Node and
// PHP identity-verification examples docs/upstreams.md includes, the
// gitleaks rules, and the compose and Kubernetes files (kubeconform).
//
// A test whose program is missing (nginx, caddy, gitleaks, kubeconform,
// python3 with PyJWT, node, php) is skipped locally and fails under CI, where .ci/run
// installs or builds them. Programs built from Go modules are found on
// PATH or through KEYGATE_TEST_CADDY, KEYGATE_TEST_GITLEAKS and
// KEYGATE_TEST_KUBECONFORM; KEYGATE_TEST_KUBERNETES_SCHEMAS names the
// schemas kubeschema generated for kubeconform.
package deploy
