"""Runs the stricter AWS emulator: moto's server in-process behind the Plinth layer.

    python tests/stack/aws/server.py --host 127.0.0.1 --port 4566

Prints one "listening" line when it accepts connections; exits 0 on SIGTERM or SIGINT.
Settings come from PLINTH_* environment variables (see plinth_aws/config.py and README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from werkzeug.serving import make_server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )

    from plinth_aws.app import StrictAws
    from plinth_aws.config import from_environment

    # Building moto's EC2 backend (its AMI and instance-type catalogues) takes a second or two;
    # pay it before saying "listening" rather than on the first call a test times.
    from moto.backends import get_backend
    from moto.core import DEFAULT_ACCOUNT_ID

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    get_backend("ec2")[DEFAULT_ACCOUNT_ID][region]

    if os.environ.get("PLINTH_AWS_LOG") != "1":
        # One log line per request drowns the test output; PLINTH_AWS_LOG=1 brings it back.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = StrictAws(from_environment(), DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    # Moto writes its own address into some responses (queue URLs, presigned links).
    os.environ.setdefault("MOTO_PORT", str(server.server_port))
    from plinth_aws.dataplane.plane import DataPlaneError

    try:
        app.start_data_plane(server.server_port)
    except DataPlaneError as error:
        print(f"plinth-aws: cannot start the data plane: {error}", file=sys.stderr, flush=True)
        server.server_close()
        return 1

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return, which runs on this very thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(
        f"plinth-aws listening on http://{args.host}:{server.server_port} "
        f"(strict={int(app.config.strict)}, data_plane={int(app.data_plane is not None)})",
        flush=True,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        # Instances, proxies and database servers are processes of their own: stop them.
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
