{
  description = "choirci: one honest answer to 'is this commit good enough to promote?' (Nix + Rust monorepos)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  # On a NixOS host there is no bare python3 to pip-install into; these outputs are the way in:
  #   nix run .#choirci -- --grind          (the pytest job; `choirci run ...` is the same)
  #   nix run .#choirci -- gate phase-2 --evidence evidence/
  #   nix develop                           (python with every dependency, editable choirci)
  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" ];
      lib = nixpkgs.lib;
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      version = "0.1.0";

      # Only what the wheel needs: a git checkout's .venv, fixtures' target/ dirs and
      # evidence never reach the store (and never change the package's hash).
      src = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./pyproject.toml
          ./README.md
          ./LICENSE
          ./choirci
          (lib.fileset.maybeMissing ./checks)
        ];
      };

      # Keep in step with [project].dependencies in pyproject.toml (tests/test_flake.py checks).
      runtimeDeps = ps: [ ps.pytest ps.pytest-xdist ps.plumbum ps.pytest-testinfra ps.pyyaml ps.junit-xml ];
      # ... and with the `test` extra.
      testDeps = ps: [ ps.hypothesis ps.junitparser ps.xmlschema ps.types-pyyaml ];

      choirciFor = ps: ps.buildPythonPackage {
        pname = "choirci";
        inherit version src;
        pyproject = true;
        build-system = [ ps.setuptools ];
        dependencies = runtimeDeps ps;
        pythonImportsCheck = [ "choirci" "choirci.plugin" "choirci.cli" ];
        meta = {
          description = "Closures, targeted Rust tests, host checks and phase gates as pytest items with evidence";
          license = lib.licenses.mit;
          mainProgram = "choirci";
        };
      };

      # Tests that need neither nix nor cargo nor a network: they run inside the build sandbox.
      unitTests = [ "tests/test_config.py" "tests/test_matrix_shards.py" "tests/test_parity_compare.py" ];
    in
    {
      packages = forAllSystems (pkgs: rec {
        choirci = choirciFor pkgs.python3Packages;
        default = choirci;
      });

      apps = forAllSystems (pkgs:
        let
          choirci = {
            type = "app";
            program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.choirci}/bin/choirci";
          };
        in
        {
          inherit choirci;
          default = choirci;
        });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            (pkgs.python3.withPackages (ps: runtimeDeps ps ++ testDeps ps ++ [ ps.setuptools ps.pip ]))
            pkgs.python3Packages.venvShellHook
            pkgs.actionlint
            pkgs.act          # nektos/act: tests/test_act.py runs the workflows with it
            pkgs.ruff
            pkgs.mypy
            pkgs.git
            pkgs.openssh
            pkgs.cargo
            pkgs.rustc
            pkgs.rustfmt
          ];
          # An editable install (no dependencies: they come from Nix) so that the pytest11
          # entry point registers the plugin while the sources stay live.
          venvDir = ".venv-nix";
          postVenvCreation = "pip install --quiet --no-deps --no-build-isolation -e .";
        };
      });

      checks = forAllSystems (pkgs:
        let
          choirci = self.packages.${pkgs.stdenv.hostPlatform.system}.choirci;
          python = pkgs.python3.withPackages (ps: [ choirci ] ++ testDeps ps);
        in
        {
          inherit choirci;

          # The installed entry points: the console script and the pytest plugin.
          cli = pkgs.runCommand "choirci-cli-check" { nativeBuildInputs = [ python ]; } ''
            choirci --version
            pytest --help | grep -q -- '--grind'
            choirci matrix --config ${./fixtures/choiros-mini/choirci.yaml} > matrix.json
            grep -q '"closure-sandbox"' matrix.json
            cp matrix.json $out
          '';

          unit = pkgs.runCommand "choirci-unit-tests" { nativeBuildInputs = [ python ]; } ''
            cp -r ${./tests} tests && cp ${./pyproject.toml} pyproject.toml && chmod -R u+w .
            HOME=$TMPDIR python -m pytest -p no:cacheprovider -q ${lib.concatStringsSep " " unitTests}
            touch $out
          '';
        });
    };
}
