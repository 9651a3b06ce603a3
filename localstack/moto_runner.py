"""Run moto's server for Vigie's local tests, tied to the life of whoever started it.

Usage: python moto_runner.py [PORT]   (PORT defaults to 0: the OS picks a free port)

Protocol with the parent (see shared/emulator/src/lib.rs):
  * once the server answers HTTP, exactly one line is printed on stdout:
        VIGIE_EMULATOR_READY http://127.0.0.1:PORT
  * the runner then blocks reading stdin; when stdin reaches end-of-file (the parent closed
    the pipe, exited, crashed or was killed) the server is stopped and the runner exits.
  * SIGTERM, SIGINT and SIGHUP stop it too.

Request logs are silenced unless VIGIE_EMULATOR_VERBOSE is set; errors go to stderr.

Compatibility fix: moto 5.2.5 names the XML root of a few S3 responses `<OperationResponse>`
(e.g. `<GetBucketVersioningResponse>`) where S3 uses e.g. `<VersioningConfiguration>`. boto3
does not care; the AWS SDK for Rust rejects the response. `fix_s3_result_wrappers` supplies the
real root names before the server starts.
"""

import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

READY = "VIGIE_EMULATOR_READY"
HOST = "127.0.0.1"


def log(message: str) -> None:
    print(f"moto_runner: {message}", file=sys.stderr, flush=True)


def wait_until_answering(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2):
                return
        except urllib.error.HTTPError:
            # Any HTTP status means the server is up and speaking HTTP.
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto server at {url} does not answer: {error}") from error
            time.sleep(0.05)


# S3 operations whose XML root moto 5.2.5 gets wrong, with the root S3 really uses.
S3_RESULT_ROOTS = {
    "GetBucketVersioning": "VersioningConfiguration",
    "GetBucketAccelerateConfiguration": "AccelerateConfiguration",
    "GetBucketRequestPayment": "RequestPaymentConfiguration",
    "ListParts": "ListPartsResult",
    "ListBucketInventoryConfigurations": "ListInventoryConfigurationsResult",
}


def fix_s3_result_wrappers() -> None:
    """Adds the missing `resultWrapper`s to the S3 model moto serialises responses with.

    Best effort: if a later moto changes the internals this relies on, say so and go on.
    """
    try:
        import moto.core.utils as core_utils

        load = core_utils._load_service_model

        def load_fixed(service_name, model_name):
            model = load(service_name, model_name)
            if service_name == "s3" and model_name == "service-2":
                for operation, root in S3_RESULT_ROOTS.items():
                    output = model.get("operations", {}).get(operation, {}).get("output")
                    if output is not None:
                        output.setdefault("resultWrapper", root)
            return model

        core_utils._load_service_model = load_fixed
        core_utils.get_service_model.cache_clear()
    except Exception as error:  # noqa: BLE001 - a missing fix must not stop the emulator
        log(f"could not apply the S3 response fix: {error!r}")


def cheap_dynamodb_transactions() -> None:
    """Makes a DynamoDB transaction cost what it touches, not the whole table.

    moto 5.2.5 backs up every table a transaction names with a deep copy of the table (once
    per item), so each transaction costs O(items x table size) and the local stack slows down
    as its single table grows; DynamoDB's cost is per item. Here the backup is of the items the
    transaction names, and a failed transaction puts exactly those back.

    Best effort: if a later moto changes the internals this relies on, say so and go on.
    """
    try:
        import copy

        from moto.dynamodb.models import DynamoDBBackend
        from moto.dynamodb.models.table import Table

        original = DynamoDBBackend.transact_write_items

        def key_of(backend, op_type, op):
            table = backend.get_table(op["TableName"])
            if op_type != "Put":
                return op["Key"]
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
            return key

        def transact_write_items(self, transact_items):
            before = []
            for entry in transact_items:
                try:
                    op_type, op = next(iter(entry.items()))
                    key = key_of(self, op_type, op)
                    current = self.get_item(op["TableName"], key)
                    attrs = copy.deepcopy(current.to_json()["Attributes"]) if current else None
                    before.append((op["TableName"], key, attrs))
                except Exception:  # noqa: BLE001 - moto's own checks report it below
                    pass
            try:
                return original(self, transact_items)
            except Exception:
                for table_name, key, attrs in reversed(before):
                    try:
                        if attrs is None:
                            if self.get_item(table_name, key) is not None:
                                self.delete_item(table_name, key)
                        else:
                            self.put_item(table_name, attrs)
                    except Exception as error:  # noqa: BLE001
                        log(f"transaction rollback of {key} failed: {error!r}")
                raise

        # The whole-table backup becomes the table itself (its restore then changes nothing);
        # the items above are what is restored.
        Table.__deepcopy__ = lambda self, memo: self
        DynamoDBBackend.transact_write_items = transact_write_items
    except Exception as error:  # noqa: BLE001 - a missing fix must not stop the emulator
        log(f"could not apply the DynamoDB transaction fix: {error!r}")


def main() -> int:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0

    if not os.environ.get("VIGIE_EMULATOR_VERBOSE"):
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

    # Imported late so a missing or broken install shows up as a clear error on stderr.
    from moto.server import ThreadedMotoServer

    fix_s3_result_wrappers()
    cheap_dynamodb_transactions()

    stop = threading.Event()

    def on_signal(signum, _frame):
        log(f"signal {signum}, stopping")
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)

    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    _, bound_port = server.get_host_and_port()
    url = f"http://{HOST}:{bound_port}"
    wait_until_answering(url, timeout=30)

    sys.stdout.write(f"{READY} {url}\n")
    sys.stdout.flush()

    def watch_stdin():
        # Returns on end-of-file: the parent is gone or asked us to stop.
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    # The main thread waits (with a timeout, so signal handlers run promptly).
    while not stop.wait(0.5):
        pass

    try:
        server.stop()
    except Exception as error:  # noqa: BLE001 - we are exiting anyway
        log(f"error while stopping: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
