"""``choirci release``: sign what passed the gate, and verify a signed evidence dir.

The policy (what may be signed) is :mod:`choirci.release.promote`; the tools (nix store sign,
ssh-keygen -Y) are :mod:`choirci.release.sign`. Keys come from ``--nix-key``/``--ssh-key``,
else the config's ``release.nix_signing_key``/``release.ssh_signing_key`` (when the config
has them), else ``$CHOIRCI_NIX_SIGNING_KEY``/``$CHOIRCI_SSH_SIGNING_KEY``; each is a file
path or ``env:NAME``. A missing key is an error (exit 2), never an unsigned release.

Exit status of ``sign``: 0 signed, 1 the gate (or a closure) did not pass, 3 the gate is
incomplete, 2 refused or bad input (no or stale verdict, missing key). Of ``verify``: 0
verified, 1 the evidence differs from what was signed or is not signed by an allowed key,
2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from choirci import config as config_mod
from choirci.cli import add_config_argument
from choirci.config import Config, NixSettings
from choirci.errors import ChoirciError
from choirci.nix.adapter import Nix
from choirci.release import promote, sign
from choirci.release.verify import check_store_exists

HELP = "sign a run that passed its gate (Nix store paths + evidence), verify signed evidence"

DESCRIPTION = """\
Promotion only of what passed the gate.

  sign    when gates/<gate>.json says pass for this exact record and commit and the gate
          passes again when recomputed: sign every closure of the run (with its
          dependencies) with the Nix key, then the evidence bundle (commit, gate, verdict,
          store paths with narHash, sha256 of every evidence file) with the SSH key
  verify  check a signed evidence dir: signature by an allowed key, no evidence file edited,
          missing or added

examples:
  choirci gate release --evidence evidence/
  choirci release sign --evidence evidence/ --gate release \\
      --nix-key /etc/choirci/grind-1.sec --ssh-key env:CHOIRCI_SSH_SIGNING_KEY
  choirci release verify evidence/ --allowed-signers ops/allowed_signers

Keys: --nix-key/--ssh-key (a file, or env:NAME), else release.nix_signing_key /
release.ssh_signing_key in choirci.yaml, else $CHOIRCI_NIX_SIGNING_KEY /
$CHOIRCI_SSH_SIGNING_KEY. Key values never appear in evidence, logs or errors.
Exit status: sign 0 signed, 1 gate failed, 3 gate incomplete, 2 refused or bad input;
verify 0 verified, 1 tampered or untrusted, 2 bad input.
"""

SIGN_DESCRIPTION = """\
Sign the closures and the evidence of a run whose gate passed. Refused (nothing signed)
unless <evidence>/gates/<gate>.json says pass for the commit and the choirci.json on disk,
the gate recomputed from that record passes (phase order too, from the dirs the verdict
names and --history), and each closure's store path still has the narHash that passed.
No option signs a failing or incomplete gate.

example:
  choirci release sign --evidence evidence/ --gate release --nix-key /etc/choirci/grind-1.sec \\
      --ssh-key /etc/choirci/evidence_ed25519
"""

VERIFY_DESCRIPTION = """\
Check a signed evidence dir: signed/evidence.json.sig is a good "choirci-evidence" signature
by a key in ALLOWED_SIGNERS (for --identity, when given), and every evidence file is as
signed. Each problem is one line: edited, missing or added files, an untrusted key.

allowed_signers lines look like:
  grind-evidence namespaces="choirci-evidence" ssh-ed25519 AAAAC3Nz...

With --store, also check that every signed closure is on that store (e.g. production's)
carrying a valid signature by the Nix key the bundle names.

examples:
  choirci release verify evidence/ --allowed-signers ops/allowed_signers --identity grind-evidence
  choirci release verify evidence/ --allowed-signers ops/allowed_signers --store ssh://choiros-prod
"""

# config key (release.<key>, proposed) and default environment variable, per key kind
KEYS = {"nix": ("nix_signing_key", "CHOIRCI_NIX_SIGNING_KEY", "--nix-key"),
        "ssh": ("ssh_signing_key", "CHOIRCI_SSH_SIGNING_KEY", "--ssh-key")}
CONFIG_HELP = ("choirci.yaml (default: $CHOIRCI_CONFIG, else the nearest, if any): its nix: "
               "settings, gates and key locations")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter
    signer = sub.add_parser("sign", help="sign a run whose gate passed",
                            description=SIGN_DESCRIPTION, formatter_class=fmt)
    signer.add_argument("--evidence", metavar="DIR", type=Path, default=None,
                        help="evidence dir (default: the config's 'evidence', else ./evidence)")
    signer.add_argument("--gate", metavar="GATE", default="release",
                        help="the gate whose pass is signed (default: release)")
    signer.add_argument("--nix-key", metavar="FILE|env:NAME", default=None,
                        help="Nix secret key (nix key generate-secret) that signs the store paths")
    signer.add_argument("--ssh-key", metavar="FILE|env:NAME", default=None,
                        help="OpenSSH private key (unencrypted, mode 600) that signs the evidence")
    signer.add_argument("--history", metavar="DIR", type=Path, action="append", default=[],
                        help="another evidence dir of the same commit for earlier phases, as "
                        "for `choirci gate` (repeatable)")
    signer.add_argument("--gates", metavar="DIR", type=Path, default=None,
                        help="custom gate definitions, as for `choirci gate`")
    add_config_argument(signer, CONFIG_HELP)
    add_verify_arguments(sub.add_parser("verify", help="verify a signed evidence dir",
                                        description=VERIFY_DESCRIPTION, formatter_class=fmt))


def add_verify_arguments(verifier: argparse.ArgumentParser) -> None:
    """``release verify`` (also ``choirci evidence verify``)."""
    verifier.add_argument("evidence", metavar="DIR", type=Path, help="the signed evidence dir")
    verifier.add_argument("--allowed-signers", metavar="FILE", type=Path, required=True,
                          help="OpenSSH allowed_signers file naming the keys trusted to sign")
    verifier.add_argument("--identity", metavar="ID", default=None,
                          help="require this identity of allowed_signers (default: any whose "
                          "key made the signature)")
    verifier.add_argument("--store", metavar="URI", default=None,
                          help="also check every signed closure is on this Nix store (e.g. "
                          "ssh://choiros-prod, or 'local') with a valid signature by the "
                          "bundle's Nix key")
    add_config_argument(verifier, CONFIG_HELP)


def run(args: argparse.Namespace) -> int:
    return run_sign(args) if args.action == "sign" else run_verify(args)


def optional_config(explicit: str | None) -> Config | None:
    """The config when one is given or found; signing and verifying also work without one."""
    if explicit or os.environ.get("CHOIRCI_CONFIG"):
        return config_mod.resolve(explicit, Path.cwd())
    found = config_mod.find_config(Path.cwd())
    return config_mod.load(found) if found else None


def key_spec(kind: str, flag: str | None, cfg: Config | None,
             env: dict[str, str] | None = None) -> str:
    """Where the ``kind`` key comes from: the flag, the config, the default variable."""
    setting, variable, option = KEYS[kind]
    if flag:
        return flag
    configured = getattr(cfg.release, setting, None) if cfg is not None else None
    if isinstance(configured, (str, Path)) and str(configured):
        text = str(configured)
        if text.startswith(sign.ENV_PREFIX) or Path(text).is_absolute() or cfg is None:
            return text
        return str((cfg.path.parent if cfg.path else cfg.root) / text)  # relative to the file
    if (os.environ if env is None else env).get(variable):
        return f"env:{variable}"
    raise sign.KeyError_(f"no {kind.upper() if kind == 'ssh' else 'Nix'} signing key: give "
                         f"{option} FILE (or env:NAME), set release.{setting} in choirci.yaml, or "
                         f"export {variable}; nothing is signed without it")


def run_sign(args: argparse.Namespace) -> int:
    cfg = optional_config(args.config)
    directory = args.evidence or (cfg.evidence_dir if cfg else Path("evidence"))
    gates_dir = args.gates or (cfg.gates_dir if cfg else None)
    try:
        passed = promote.passed_gate(directory, args.gate, gates_dir, args.history)
        nix_key = sign.load_key(key_spec("nix", args.nix_key, cfg), "Nix signing key",
                                forbidden_dir=directory)
        ssh_key = sign.load_key(key_spec("ssh", args.ssh_key, cfg), "SSH signing key",
                                forbidden_dir=directory)
        nix = Nix.from_settings(cfg.nix if cfg else NixSettings(), cfg.root if cfg else None)
        signed = promote.sign_evidence(directory, passed, nix, nix_key, ssh_key)
    except promote.NotSigned as exc:
        print(f"choirci: release sign: NOT SIGNED: {exc}", file=sys.stderr)
        return exc.exit_code
    made = signed.bundle
    print(f"choirci: gate {made.gate}: PASS for commit {made.commit} (record sha256 "
          f"{made.record_sha256[:16]}...)")
    print(f"choirci: signed {made.signed_paths} store path(s) ({len(made.closures)} closure "
          f"output(s) with their dependencies) with Nix key {sign.key_name(made.nix_key)}")
    for closure in made.closures:
        print(f"  {closure.name}.{closure.output}: {closure.path} ({closure.nar_hash})")
    for name in signed.not_signed:
        print(f"  not signed (not built by this run): {name}")
    print(f"choirci: evidence signed with SSH key {ssh_key.source}: {signed.written[0]} "
          f"({len(made.files)} files) and {signed.written[1].name}")
    print(f"choirci: trust it with: nix.conf trusted-public-keys = {made.nix_key}")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    if not args.evidence.is_dir():
        raise ChoirciError(f"{args.evidence}: no such evidence dir")
    store = None
    if args.store:
        cfg = optional_config(args.config)
        uri = None if args.store == "local" else args.store
        check_store_exists(uri)
        store = (Nix.from_settings(cfg.nix if cfg else NixSettings(), None, store=uri),
                 args.store if uri else "the local store")
    result = promote.verify_evidence(args.evidence, args.allowed_signers, args.identity,
                                     store=store)
    for line in result.problems:
        print(f"  {line}")
    made = result.bundle
    if result.problems:
        print(f"choirci: release verify: {args.evidence}: FAILED ({len(result.problems)} "
              "problem(s)); do not promote from it", file=sys.stderr)
        return 1
    assert made is not None  # no problem means the bundle was read
    for note in result.notes:
        print(f"  note: {note}")
    on = f", each on {store[1]} with a valid signature" if store else ""
    print(f"choirci: release verify: {args.evidence}: OK, signed by {result.identity}: gate "
          f"{made.gate} {made.verdict} for commit {made.commit}, {len(made.files)} evidence "
          f"files as signed, {len(made.closures)} closure output(s) signed with Nix key "
          f"{made.nix_key}{on}")
    for closure in made.closures:
        print(f"  {closure.name}.{closure.output}: {closure.path} ({closure.nar_hash})")
    return 0

