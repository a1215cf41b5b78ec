#!/usr/bin/env bash
# The script of the writ-exec composite action (action.yml beside it): installs the writ CLI, then runs
# WRIT_ACTION_COMMAND under `writ exec` proving the workload with the job's GitHub OIDC token. The
# command's exit code is this script's. Tested by packages/server/test/github-action.test.ts.
set -euo pipefail

fail() {
  echo "::error title=writ exec::$1" >&2
  exit 1
}

[ -n "${WRIT_ACTION_SERVER:-}" ] || fail "the input 'server' is required (the Writ issuer URL)"
[ -n "${WRIT_ACTION_AUDIENCE:-}" ] || fail "the input 'audience' is required (the API the command calls)"
[ -n "${WRIT_ACTION_COMMAND:-}" ] || fail "the input 'command' is required"
# Without these the runner gives the job no ID token: writ exec would find no identity to prove.
if [ -z "${ACTIONS_ID_TOKEN_REQUEST_URL:-}" ] || [ -z "${ACTIONS_ID_TOKEN_REQUEST_TOKEN:-}" ]; then
  fail "no GitHub OIDC token for this job: give it 'permissions: id-token: write'"
fi

if [ "${WRIT_ACTION_INSTALL:-true}" = true ]; then
  # Into a prefix of the job's own (no sudo, nothing left on a self-hosted runner's global prefix),
  # on PATH for this step and, through GITHUB_PATH, for the steps after it.
  prefix="${RUNNER_TEMP:?RUNNER_TEMP is unset: not on a GitHub Actions runner}/writ-cli"
  read -r -a packages <<<"${WRIT_ACTION_PACKAGES:-@writ/sdk @writ/server}"
  [ "${#packages[@]}" -gt 0 ] || fail "the input 'packages' is empty"
  # better-sqlite3 (the server's embedded store) is the one dependency with an install script.
  npm install --global --prefix "$prefix" --allow-scripts=better-sqlite3 --no-audit --no-fund --loglevel=error \
    "${packages[@]}" >&2 || fail "npm install ${packages[*]} failed"
  export PATH="$prefix/bin:$PATH"
  if [ -n "${GITHUB_PATH:-}" ]; then echo "$prefix/bin" >>"$GITHUB_PATH"; fi
fi
command -v writ >/dev/null || fail "writ is not on PATH (install: false needs it installed before this step)"
echo "writ $(writ --version)" >&2

args=(--server "$WRIT_ACTION_SERVER" exec --audience "$WRIT_ACTION_AUDIENCE")
if [ -n "${WRIT_ACTION_SCOPE:-}" ]; then args+=(--scope "$WRIT_ACTION_SCOPE"); fi
if [ -n "${WRIT_ACTION_FEDERATION_AUDIENCE:-}" ]; then
  args+=(--federation-audience "$WRIT_ACTION_FEDERATION_AUDIENCE")
fi
while IFS= read -r label; do
  label="${label#"${label%%[![:space:]]*}"}"
  label="${label%"${label##*[![:space:]]}"}"
  [ -z "$label" ] && continue
  [[ "$label" == *=* ]] || fail "label '$label' is not name=value"
  args+=(--label "$label")
done <<<"${WRIT_ACTION_LABELS:-}"

exec writ "${args[@]}" -- bash -eo pipefail -c "$WRIT_ACTION_COMMAND"
