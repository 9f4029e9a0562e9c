# Sourced by scripts/demo and scripts/test: environment for offline runs, scoped to them.
# Nix: flakes on, no network substituters (only what a test configures), no build sandbox
# (the example workspace's derivations call the host's cargo; see fixtures/choiros-mini).
CHOIRCI_NIX_CONFIG=$'experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\nwarn-dirty = false'
export NIX_CONFIG="${NIX_CONFIG:+$NIX_CONFIG$'\n'}$CHOIRCI_NIX_CONFIG"
if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
export CARGO_NET_OFFLINE=true
