# Shared by the shell broker tests (sourced): BUILD_DIR from $2 and its faustc, and what
# tap-lib.sh gives (a temporary dir, TAP checks, the children to kill).
# Usage in a test: . "$(dirname "$0")/e2e-lib.sh" NAME "$@"
name=${1:?test name}
build=$(cd "${2:?build dir}" && pwd)
faustc="$build/cli/faustc"
. "$(dirname "${BASH_SOURCE[0]}")/tap-lib.sh" "$name"
