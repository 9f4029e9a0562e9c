# A crane-like vendoring step whose pinned hash is stale, offline and without nixpkgs:
# `vendor` is a fixed-output derivation (outputHash set) whose builder writes other content
# than the hash says, so every Nix fails it with
#   error: hash mismatch in fixed-output derivation '/nix/store/...-vendor.drv':
# `app` builds on top of it (as a crate build uses its vendored dependencies); `ok` is
# unrelated and must still build (--keep-going). Used by tests/test_closures_nix.py.
{
  outputs = { self }:
    let
      system = "x86_64-linux";
      sh = name: script: extra: builtins.derivation ({
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" script ];
        PATH = "/usr/bin:/bin";
      } // extra);
      vendor = sh "vendor" "echo vendored crates > $out" {
        outputHashMode = "flat";
        outputHashAlgo = "sha256";
        # Not the hash of "vendored crates\n": stale, as after a Cargo.lock bump.
        outputHash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
      };
    in
    {
      packages.${system} = {
        inherit vendor;
        app = sh "app" "cat $vendor > $out" { inherit vendor; };
        ok = sh "ok" "echo ok > $out" { };
      };
    };
}
