"""`streetwatch cameras`: the fleet's camera definitions in the intake API (`run --fleet`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from streams.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, err
from streams.config import ConfigError, api_key, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cameras",
        help="manage the fleet's cameras in the intake API",
        description="Camera definitions for `streetwatch run --fleet` live in the intake API. "
        "`import` puts the cameras of a YAML config there (replacing those of the same id); "
        "`list` shows each camera's owner and who runs it; `remove` deletes one. Needs a key "
        "with the admin scope (in $STREETWATCH_API_KEY, or the config's api.key_env).",
    )
    p.add_argument("action", choices=["import", "list", "remove"])
    p.add_argument("ids", nargs="*", metavar="ID", help="remove: the camera ids")
    p.add_argument("--config", type=Path, help="YAML config (import: its cameras; its api.url)")
    p.add_argument("--api", metavar="URL", help="the intake API (default: the config's api.url)")
    p.add_argument(
        "--prune", action="store_true", help="import: also remove cameras the config lacks"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api.client import IntakeClient, IntakeError

    config = None
    if args.config is not None:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            err(str(exc))
            return EXIT_USAGE
    if args.action == "import" and (config is None or not config.cameras):
        err("import needs --config with cameras")
        return EXIT_USAGE
    if args.action == "remove" and not args.ids:
        err("remove needs the ids of the cameras")
        return EXIT_USAGE
    url = args.api or (config.api.url if config and config.api else None)
    if not url:
        err("no API: give --api URL (or a --config with api.url)")
        return EXIT_USAGE
    key_env, key = api_key(config)
    if not key:
        err(f"no API key in ${key_env}")
        return EXIT_USAGE
    try:
        with IntakeClient(url, key, timeout=30) as client:
            if args.action == "list":
                for cam in client.fleet_cameras():
                    running = ", ".join(cam["running_on"]) or "nobody"
                    print(f"{cam['camera_id']}  owner {cam['owner'] or '-'}  runs on {running}")
                return EXIT_OK
            if args.action == "remove":
                for camera_id in args.ids:
                    client.delete_fleet_camera(camera_id)
                    print(f"removed {camera_id}")
                return EXIT_OK
            assert config is not None
            for camera in config.cameras:
                client.put_fleet_camera(camera.id, camera.model_dump(mode="json"))
            pruned = 0
            if args.prune:
                keep = {c.id for c in config.cameras}
                for cam in client.fleet_cameras():
                    if cam["camera_id"] not in keep:
                        client.delete_fleet_camera(cam["camera_id"])
                        pruned += 1
            print(
                f"imported {len(config.cameras)} cameras into {url}"
                + (f", removed {pruned}" if args.prune else "")
            )
            return EXIT_OK
    except IntakeError as exc:
        err(str(exc))
        return EXIT_FAILED
