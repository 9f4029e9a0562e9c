# Sourced by scripts/demo and scripts/test: environment for offline runs, scoped to them.
# Nix: flakes on, no network substituters (only what a test configures), no build sandbox
# (the example workspace's derivations call the host's cargo; see fixtures/choiros-mini), builds
# as the calling user (that cargo lives under a home nixbld users cannot read), and no global
# flake registry lookup (`nix develop` would try the network for it).
CHOIRCI_NIX_CONFIG=$'experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\nbuild-users-group =\nflake-registry = /var/empty/no-flake-registry.json\nwarn-dirty = false'
export NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG$'\n'}$CHOIRCI_NIX_CONFIG"
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_NET_OFFLINE=true
