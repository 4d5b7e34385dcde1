"""The `hearth` command: migrations, servers, accounts, roles, demo data and cleanup."""

from __future__ import annotations

import sys
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

import config as config_module
from app.errors import HearthError
from app.extensions import db
from app.maintenance import DEFAULT_REST


def _fail(error: HearthError) -> None:
    db.rollback()
    fields = error.extra.get("fields")
    detail = f" ({', '.join(f'{k}: {v}' for k, v in fields.items())})" if fields else ""
    raise click.ClickException(f"{error.description}{detail}")


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(accounts_group)
    app.cli.add_command(roles_group)
    app.cli.add_command(clients_group)
    app.cli.add_command(serve)
    app.cli.add_command(cleanup)
    app.cli.add_command(demo)


@click.group("db", help="Database migrations.")
def db_group() -> None:
    pass


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations to DATABASE_URL."""
    from app.migrate import upgrade

    upgrade(current_app.config["DATABASE_URL"], revision)
    click.echo(f"database at {revision}")


@click.group("accounts", help="Manage accounts.")
def accounts_group() -> None:
    pass


@accounts_group.command("create")
@click.argument("handle")
@click.option("--password", required=True)
@click.option("--email", default=None)
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@with_appcontext
def accounts_create(handle: str, password: str, email: str | None, role: str) -> None:
    """Create a password account; prints its id as the last line."""
    from app.accounts import service
    from app.accounts.schemas import SignUp
    from app.accounts.views import hasher
    from app.requests import validate

    try:
        form = validate(SignUp, {"handle": handle, "password": password, "email": email})
        account = service.sign_up(db.session, hasher(), form, roles=(role,))
    except HearthError as error:
        _fail(error)
    db.commit()
    click.echo(f"created {account.handle} ({', '.join(service.role_names(account))})")
    click.echo(account.id)


@click.group("roles", help="Grant and revoke roles.")
def roles_group() -> None:
    pass


@roles_group.command("grant")
@click.argument("handle")
@click.argument("role")
@with_appcontext
def roles_grant(handle: str, role: str) -> None:
    """Give HANDLE the ROLE."""
    from app.accounts import service

    try:
        account = service.grant_role(db.session, handle, role)
    except HearthError as error:
        _fail(error)
    db.commit()
    click.echo(f"{account.handle}: {', '.join(service.role_names(account))}")


@roles_group.command("revoke")
@click.argument("handle")
@click.argument("role")
@with_appcontext
def roles_revoke(handle: str, role: str) -> None:
    """Take ROLE away from HANDLE."""
    from app.accounts import service

    try:
        account = service.revoke_role(db.session, handle, role)
    except HearthError as error:
        _fail(error)
    db.commit()
    click.echo(f"{account.handle}: {', '.join(service.role_names(account)) or '(guest only)'}")


@click.group("clients", help="Manage OAuth clients.")
def clients_group() -> None:
    pass


@clients_group.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--scopes", default="", help='Space-separated, e.g. "openid profile CREATE_POST"')
@click.option("--public/--confidential", default=False, show_default=True)
@click.option(
    "--auth-method", type=click.Choice(["none", "client_secret_basic", "client_secret_post"])
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]),
)
@click.option(
    "--scope-policy",
    type=click.Choice(["explicit", "inherit"]),
    default="explicit",
    show_default=True,
)
@click.option(
    "--owner", default=None, help="Owning account's handle (needed for client_credentials)"
)
@click.option("--skip-consent", is_flag=True, help="First-party: remembered consent may apply")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON")
@with_appcontext
def clients_create(
    name: str,
    redirect_uris: tuple[str, ...],
    scopes: str,
    public: bool,
    auth_method: str | None,
    grants: tuple[str, ...],
    scope_policy: str,
    owner: str | None,
    skip_consent: bool,
    as_json: bool,
) -> None:
    """Register a client; its secret is printed once."""
    import json

    from app.oauth import clients
    from app.requests import validate

    try:
        fields = validate(
            clients.ClientFields,
            {
                "name": name,
                "redirect_uris": list(redirect_uris),
                "scopes": scopes,
                "public": public,
                "token_endpoint_auth_method": auth_method,
                "grant_types": list(grants) or ["authorization_code", "refresh_token"],
                "scope_policy": scope_policy,
                "owner": owner,
                "skip_consent": skip_consent,
            },
        )
        client, secret = clients.create(db.session, fields)
    except HearthError as error:
        _fail(error)
    db.commit()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "client_id": client.id,
                    "client_secret": secret,
                    "token_endpoint_auth_method": client.token_endpoint_auth_method,
                    "redirect_uris": client.redirect_uri_list,
                    "scopes": client.scopes.split(),
                    "grants": client.grant_types.split(),
                    "scope_policy": client.scope_policy,
                }
            )
        )
        return
    click.echo(f"client_id:     {client.id}")
    if secret:
        click.echo(f"client_secret: {secret}  (shown once; store it now)")


@clients_group.command("list")
@with_appcontext
def clients_list() -> None:
    """List clients."""
    from app.oauth import clients

    for client in clients.list_all(db.session):
        kind = "public" if client.public else "confidential"
        click.echo(f"{client.id}  {client.name}  ({kind}; {client.scopes or 'no scopes'})")


@clients_group.command("rotate-secret")
@click.argument("client_id")
@with_appcontext
def clients_rotate(client_id: str) -> None:
    """Replace a confidential client's secret; prints the new one once."""
    from app.oauth import clients

    try:
        _client, secret = clients.rotate_secret(db.session, client_id)
    except HearthError as error:
        _fail(error)
    db.commit()
    click.echo(secret)


@clients_group.command("delete")
@click.argument("client_id")
@with_appcontext
def clients_delete(client_id: str) -> None:
    """Delete a client with all its grants, codes and tokens."""
    from app.oauth import clients

    try:
        clients.delete(db.session, client_id)
    except HearthError as error:
        _fail(error)
    db.commit()
    click.echo(f"deleted {client_id}")


@click.command("cleanup")
@click.option(
    "--batch",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows deleted per transaction",
)
@click.option(
    "--rest",
    default=DEFAULT_REST,
    show_default=True,
    type=click.FloatRange(min=0),
    help="After each full batch, pause this many times as long as the batch took (0: no pause)",
)
@with_appcontext
def cleanup(batch: int, rest: float) -> None:
    """Delete expired sessions, pending requests, codes and tokens in bounded batches."""
    from app.maintenance import cleanup as run_cleanup

    counts = run_cleanup(db.session, batch, rest)
    click.echo(" ".join(f"{name}={count}" for name, count in counts.items()))


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Seed a demo forum: an admin, a member, categories and threads (idempotent)."""
    from app.demo import seed

    for line in seed(db.session):
        click.echo(line)
    db.commit()


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--api-port", default=8000, show_default=True)
@click.option("--web-port", default=3000, show_default=True)
@with_appcontext
def serve(host: str, api_port: int, web_port: int) -> None:
    """Development: migrate, then run the API and the frontend together."""
    from werkzeug.serving import make_server

    from app.migrate import upgrade
    from frontend import create_frontend

    upgrade(current_app.config["DATABASE_URL"])
    api = current_app._get_current_object()  # type: ignore[attr-defined]
    web = create_frontend()
    servers = [
        make_server(host, api_port, api, threaded=True),
        make_server(host, web_port, web, threaded=True),
    ]
    click.echo(f"API      {api.config['PUBLIC_API_ADDRESS']}  (listening on {host}:{api_port})")
    click.echo(f"frontend {web.config['PUBLIC_WEB_ADDRESS']}  (listening on {host}:{web_port})")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        for server in servers:
            server.shutdown()


def _create_app(*_args: Any) -> Flask:
    from app import create_app

    try:
        return create_app()
    except config_module.ConfigError as error:
        click.echo(str(error), err=True)
        sys.exit(2)


main = FlaskGroup(
    name="hearth",
    create_app=_create_app,
    add_version_option=False,
    load_dotenv=False,
    help="Hearth: community forum and OAuth provider.",
)
