"""`emotion-app users add|remove|key|list --file FILE`: the users file of a shared server (`serve --users FILE`).

    emotion-app users add ana --file users.json --role analyze     # asks for a password (or --password-stdin, --no-password)
    emotion-app users key ana --file users.json                    # prints a new API key, once
    emotion-app users key ana --file users.json --revoke 3f9a1c2e  # the key with that id stops working
    emotion-app users remove ana --file users.json
    emotion-app users list --file users.json                       # names, roles, limits, key ids

A running server reads the file again within a few seconds of a change (web/api/callers.py).
"""

from __future__ import annotations

import getpass
import os
import sys

from .args import fail


def add_parser(sub) -> None:
    from ..web.users import DEFAULT_MAX_CONCURRENT, DEFAULT_RATE_PER_MINUTE, ROLES

    p = sub.add_parser("users", help="users and API keys of a shared server (serve --users FILE)")
    actions = p.add_subparsers(dest="action", required=True)
    default = os.environ.get("EMOTION_APP_USERS")

    def action(name: str, help: str):
        a = actions.add_parser(name, help=help)
        a.add_argument("--file", default=default, required=default is None, help="the users file [EMOTION_APP_USERS]")
        a.set_defaults(func=run)
        return a

    add = action("add", "add a user (a password for the page's login; API keys with `users key`)")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="analyze", help="admin: may also list everyone's results")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--no-password", action="store_true", help="no page login: API keys only")
    add.add_argument("--rate", type=float, default=DEFAULT_RATE_PER_MINUTE, help="requests per minute (default: %(default)s)")
    add.add_argument("--concurrent", type=int, default=DEFAULT_MAX_CONCURRENT, help="requests at once (default: %(default)s)")

    remove = action("remove", "remove a user and their keys")
    remove.add_argument("name")

    key = action("key", "make a new API key for a user, printed once (or --revoke one)")
    key.add_argument("name")
    key.add_argument("--revoke", metavar="KEY_ID", help="revoke the key with this id (the part after ea_) instead")

    action("list", "the users, their roles, limits and key ids")


def run(args) -> int:
    from ..web import users

    try:
        store = users.load(args.file, missing_ok=args.action == "add")
        if args.action == "list":
            for user in store.users.values():
                ids = ",".join(k.id for k in user.keys) or "-"
                login = "password" if user.password else "keys only"
                print(
                    f"{user.name}\t{user.role}\t{user.rate_per_minute:g}/min\t{user.max_concurrent} at once\t{login}\tkeys: {ids}"
                )
            return 0
        if args.action == "add":
            password = None if args.no_password else _password(args.password_stdin)
            limits = {"rate_per_minute": args.rate, "max_concurrent": args.concurrent}
            store = store.add(args.name, password, args.role, **limits)
            done = f"added {args.name} ({args.role}); make an API key with: emotion-app users key {args.name} --file {args.file}"
        elif args.action == "remove":
            store = store.remove(args.name)
            done = f"removed {args.name} and their keys"
        elif args.revoke:
            store = store.revoke(args.name, args.revoke)
            done = f"revoked {args.name}'s key {args.revoke}"
        else:
            store, key = store.new_key(args.name)
            done = None
        users.save(store, args.file)
    except users.UsersError as exc:
        return fail(exc.message)
    if done is None:  # the key, alone on stdout (for scripts); shown this once, kept hashed
        print(key)
        print(
            f"the API key of {args.name}: keep it now, it is not shown again (send it as Authorization: Bearer KEY)",
            file=sys.stderr,
        )
    else:
        print(done, file=sys.stderr)
    return 0


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise _users_error("The two passwords differ; nothing was changed.")
    if not password:
        raise _users_error("An empty password is not allowed; give one, or --no-password for a user with API keys only.")
    return password


def _users_error(message: str):
    from ..web.users import UsersError

    return UsersError(message)
