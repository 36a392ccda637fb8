# Sourced by the scripts: one shared target tree and lean debug builds, so that cargo, maturin
# and napi reuse each other's work (napi always passes --target, so everyone does).
host_triple=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_BUILD_TARGET="${CARGO_BUILD_TARGET:-$host_triple}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_PROFILE_DEV_DEBUG="${CARGO_PROFILE_DEV_DEBUG:-line-tables-only}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
