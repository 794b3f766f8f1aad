"""Helpers of atrium-app in the atrium/tryton image (run with python3):

    atrium_tryton.py wait SECONDS     until the database accepts a login
    atrium_tryton.py state MODULE...  prints "empty" (no Tryton tables),
                                      "partial" (some MODULE not activated)
                                      or "ready"
    atrium_tryton.py runner CODE ARG...
                                      runs CODE with trytond's pool of the
                                      database, as the root user, in one
                                      transaction committed at the end; CODE
                                      sees `pool`, `transaction` and `args`
    atrium_tryton.py health           JSON-RPC common.server.version on :8000

The database is TRYTON_DB_URI + TRYTON_DB_NAME; trytond's own settings come
from /etc/tryton/trytond.conf and the TRYTOND_* variables atrium-app exports.
"""
import json
import os
import sys
import time
import urllib.request


def connect():
    import psycopg2
    from urllib.parse import urlsplit, urlunsplit

    uri = urlsplit(os.environ["TRYTON_DB_URI"])
    dsn = urlunsplit((uri.scheme, uri.netloc, "/" + os.environ["TRYTON_DB_NAME"], uri.query, ""))
    return psycopg2.connect(dsn, connect_timeout=5)


def wait(seconds):
    deadline = time.monotonic() + seconds
    while True:
        try:
            connect().close()
            return 0
        except Exception as error:  # psycopg2 gives no finer class for "not up yet"
            if time.monotonic() >= deadline:
                # The message names host and database, never the password.
                print(f"atrium-app: database not reachable within {seconds} s: {error}".strip(),
                      file=sys.stderr)
                return 1
            time.sleep(2)


def state(modules):
    with connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.ir_module') IS NOT NULL")
        if not cursor.fetchone()[0]:
            print("empty")
            return 0
        cursor.execute("SELECT name FROM ir_module WHERE state = 'activated' AND name = ANY(%s)",
                       (list(modules),))
        activated = {name for (name,) in cursor.fetchall()}
    print("ready" if activated >= set(modules) else "partial")
    return 0


def runner(code, args):
    from trytond.config import config

    config.update_etc("/etc/tryton/trytond.conf")
    from trytond.pool import Pool
    from trytond.transaction import Transaction

    database = os.environ["TRYTON_DB_NAME"]
    Pool.start()
    pool = Pool(database)
    with Transaction().start(database, 0, readonly=True):
        pool.init()
    with Transaction().start(database, 0) as transaction:
        exec(compile(code, "<atrium-app runner>", "exec"),
             {"pool": pool, "transaction": transaction, "args": args, "__name__": "__atrium__"})
    return 0


def health():
    request = urllib.request.Request(
        "http://127.0.0.1:8000/",
        data=json.dumps({"id": 0, "method": "common.server.version", "params": []}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=4) as response:
        json.load(response)["result"]
    return 0


if __name__ == "__main__":
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "wait":
        sys.exit(wait(int(rest[0])))
    elif command == "state":
        sys.exit(state(rest))
    elif command == "runner":
        sys.exit(runner(rest[0], rest[1:]))
    elif command == "health":
        sys.exit(health())
    sys.exit(f"atrium_tryton.py: unknown command {command}")
