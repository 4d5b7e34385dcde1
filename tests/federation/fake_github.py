"""A small stand-in for GitHub's OAuth endpoints and the two REST calls Hearth makes.

It checks what real GitHub checks (client credentials, the code's redirect URI, PKCE S256) and
answers token errors the GitHub way: HTTP 200 with an `error` field.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from flask import Flask, abort, jsonify, redirect, request
from werkzeug.wrappers import Response

CLIENT_ID = "gh-client-id"
CLIENT_SECRET = "gh-client-secret"


@dataclass
class GitHubUser:
    id: int
    login: str
    name: str | None = None
    emails: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FakeGitHub:
    users: dict[str, GitHubUser] = field(default_factory=dict)
    # Who "clicks Authorize" next, or None to deny.
    next_login: str | None = None
    codes: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    authorize_params: list[dict[str, str]] = field(default_factory=list)

    def add(self, user: GitHubUser) -> GitHubUser:
        self.users[user.login] = user
        return user

    def app(self) -> Flask:
        app = Flask(__name__)

        @app.get("/login/oauth/authorize")
        def authorize() -> Response:
            params = request.args.to_dict()
            self.authorize_params.append(params)
            if params.get("client_id") != CLIENT_ID:
                abort(404)
            redirect_uri, state = params["redirect_uri"], params.get("state")
            if self.next_login is None:
                query = {"error": "access_denied", "state": state}
                return redirect(f"{redirect_uri}?{urlencode(query)}")
            code = secrets.token_hex(10)
            self.codes[code] = (self.next_login, redirect_uri, params.get("code_challenge"))
            return redirect(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}")

        @app.post("/login/oauth/access_token")
        def access_token() -> Response:
            form = request.form
            if request.accept_mimetypes.best != "application/json":
                abort(406)
            if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
                return jsonify({"error": "incorrect_client_credentials"})
            found = self.codes.pop(form.get("code", ""), None)
            if found is None or found[1] != form.get("redirect_uri"):
                return jsonify({"error": "bad_verification_code"})
            login, _, challenge = found
            if challenge is not None:
                digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
                if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
                    return jsonify({"error": "bad_verification_code"})
            token = "gho_" + secrets.token_hex(16)
            self.tokens[token] = login
            return jsonify({"access_token": token, "token_type": "bearer", "scope": "user:email"})

        def current() -> GitHubUser:
            authorization = request.headers.get("Authorization", "")
            login = self.tokens.get(authorization.removeprefix("Bearer "))
            if login is None:
                abort(401)
            return self.users[login]

        @app.get("/user")
        def user() -> Response:
            found = current()
            return jsonify(
                {"id": found.id, "login": found.login, "name": found.name, "email": None}
            )

        @app.get("/user/emails")
        def emails() -> Response:
            return jsonify(current().emails)

        return app
