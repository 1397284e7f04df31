"""The TensorLab magics: thin wrappers that parse arguments and call one public function each."""

from __future__ import annotations

import os
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from tensorlab import TensorLabError, connect

CONNECTION_VAR = "_tdb"


@magics_class
class TensorLabMagics(Magics):
    """`%tdb_connect` binds a TensorDB to the notebook; the other magics use it."""

    def _connection(self) -> Any:
        db = self.shell.user_ns.get(CONNECTION_VAR)
        if db is None:
            raise UsageError("Not connected: run %tdb_connect first (e.g. `%tdb_connect --study mnist`).")
        return db

    @magic_arguments()
    @argument("uri", nargs="?", default=None, help="mongodb:// URI (default: $TENSORLAB_MONGODB_URI, else local)")
    @argument("--db", default="tensorlab", help="database name")
    @argument("--study", default=None, help="study every document is tagged with")
    @argument("--user", default=None, help="user name")
    @argument("--password-env", default=None, help="environment variable that holds the password")
    @argument("--memory", action="store_true", help="ephemeral in-process store (mongomock)")
    @line_magic
    def tdb_connect(self, line: str) -> Any:
        """Connect to TensorDB and bind it as `_tdb` for the other magics."""
        args = parse_argstring(self.tdb_connect, line)
        password = None
        if args.password_env:
            password = os.environ.get(args.password_env)
            if password is None:
                raise UsageError(f"--password-env {args.password_env}: that environment variable is not set.")
        try:
            db = connect("memory://" if args.memory else args.uri, db=args.db, study=args.study, user=args.user,
                         password=password)
        except TensorLabError as error:
            raise UsageError(str(error)) from None
        self.shell.user_ns[CONNECTION_VAR] = db
        print(f"TensorDB connected: server {db.uri}, database {db.db_name!r}, study {db.study!r}")
        return None

    @line_magic
    def tdb_status(self, line: str) -> None:
        """Show the connection the magics use."""
        db = self._connection()
        print(f"TensorDB connected: server {db.uri}, database {db.db_name!r}, study {db.study!r}")
