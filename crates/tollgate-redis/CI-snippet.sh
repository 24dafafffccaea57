# ---------------------------------------------------------------- redis (tollgate-redis)
# For scripts/test. Put the install block in the "install what is missing" section,
# BEFORE `cargo test --workspace`: tollgate-redis is a workspace member, its tests start
# real redis-server processes, and with CI=true a missing Redis fails them (never a skip).
if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
    apt-get update -qq && apt-get install -y -qq redis-server
fi
# The harness looks at $REDIS_SERVER, then PATH, then /usr/bin; redis-cli must sit beside
# it (the cluster tests run `redis-cli --cluster create`). Each test starts its own
# servers on free 127.0.0.1 ports in temp dirs and kills them; the package's own
# service (port 6379), if the install started one, is not used.
export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
export REDIS_CLI="${REDIS_CLI:-$(command -v redis-cli || echo /usr/bin/redis-cli)}"
"$REDIS_SERVER" --version

# With the static checks: the async (tokio) path is behind a feature, so check it too.
step "cargo clippy -p tollgate-redis --all-features"
cargo clippy --locked -p tollgate-redis --all-targets --all-features -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --locked -p tollgate-redis --no-deps --all-features --quiet

# After `cargo test --workspace` (which already runs the blocking-path tests): the whole
# crate with the async path (tests/aio.rs needs --features tokio). About 20 s on a warm
# machine once built.
step "tollgate-redis with the async path (real redis-server, 3-node cluster, kill/restart faults)"
cargo test --locked -p tollgate-redis --all-features 2>&1 | tee -a "$LOG"
