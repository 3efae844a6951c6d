"""The player page's assets: `install` fetches rrweb-player from npm into the directory
the worker serves it from (REPLAY_PLAYER_ASSETS_DIR, else $REPLAY_DATA_DIR/player).

JavaScript is never committed: npm installs the pinned rrweb-player (2.1.6 installs
cleanly from the registry), and its UMD build and stylesheet are copied next to the
npm folder as rrweb-player.js and rrweb-player.css, the two names the page loads.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from config.settings import Settings

PLAYER_PACKAGE = "rrweb-player@2.1.6"
# file in the package's dist/ -> the name the worker serves it as (api.player_page)
PLAYER_FILES = {"rrweb-player.umd.cjs": "rrweb-player.js", "style.css": "rrweb-player.css"}
NPM_TIMEOUT_SECONDS = 600


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    about = f"install {PLAYER_PACKAGE} from npm where the worker serves it from"
    install = actions.add_parser("install", help=about, description=about)
    install.add_argument("--force", action="store_true", help="install again if present")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    target = settings.player_dir
    if not args.force and installed(target):
        print(f"rrweb-player is installed in {target}")
        return 0
    try:
        install(target)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"installed {PLAYER_PACKAGE} in {target}")
    return 0


def installed(target: Path) -> bool:
    return all((target / name).is_file() for name in PLAYER_FILES.values())


def install(target: Path) -> None:
    """npm install into target/npm, then copy the two files the page loads (each
    replaced at once, so a worker serving them never sends half a file)."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed (apt-get install npm), or fill the folder")
    prefix = target / "npm"
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", PLAYER_PACKAGE]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=NPM_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm install {PLAYER_PACKAGE} failed: {done.stderr.strip()[-500:]}")
    dist = prefix / "node_modules" / "rrweb-player" / "dist"
    for source, name in PLAYER_FILES.items():
        partial = target / f".{name}.partial"
        shutil.copyfile(dist / source, partial)
        partial.replace(target / name)
