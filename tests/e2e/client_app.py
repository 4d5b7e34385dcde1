"""Pinboard: a small third-party web app that signs its users in with Hearth (code flow + PKCE).

It is written the way an outside developer would: it knows only its client credentials and the
provider's public endpoints, keeps PKCE verifiers, states and nonces server-side, checks `state`
and `iss` on the way back (RFC 9207), and redeems the code with its secret.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Flask, abort, redirect, render_template_string, request
from werkzeug.wrappers import Response

from tests.frontend.support import jwt_claims

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pinboard</title>
<style>body { font: 16px/1.5 system-ui, sans-serif; margin: 3rem auto; max-width: 36rem; }</style>
</head><body>
<h1>{{ heading }}</h1>
{% for line in lines %}<p>{{ line }}</p>{% endfor %}
{% if frame %}<iframe title="Hearth" src="{{ frame }}" width="600" height="400"></iframe>{% endif %}
</body></html>"""


@dataclass
class Flow:
    verifier: str
    nonce: str


@dataclass
class ClientApp:
    """The app's state, which the tests read: what came back to /callback and what it redeemed."""

    issuer: str
    url: str
    client_id: str = ""
    client_secret: str = ""
    flows: dict[str, Flow] = field(default_factory=dict)
    callbacks: list[dict[str, str]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)

    @property
    def redirect_uri(self) -> str:
        return f"{self.url}/callback"

    def refresh(self, refresh_token: str) -> requests.Response:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def _token(self, form: dict[str, str]) -> requests.Response:
        return requests.post(
            f"{self.issuer}/api/oauth/token",
            data=form,
            auth=(self.client_id, self.client_secret),
            timeout=10,
        )

    def flask_app(self) -> Flask:
        app = Flask("pinboard")

        @app.get("/start")
        def start() -> Response:
            state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
            verifier = secrets.token_urlsafe(48)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            self.flows[state] = Flow(verifier, nonce)
            query = {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": request.args.get("scope", "openid profile"),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge.rstrip(b"=").decode(),
                "code_challenge_method": "S256",
            }
            return redirect(f"{self.issuer}/api/oauth/authorize?{urlencode(query)}")

        @app.get("/callback")
        def callback() -> str:
            answer = request.args.to_dict()
            self.callbacks.append(answer)
            flow = self.flows.pop(answer.get("state", ""), None)
            if flow is None or answer.get("iss") != self.issuer:
                abort(400)  # not a response to a request this app made, or from another issuer
            if "error" in answer:
                return render_template_string(
                    PAGE,
                    heading="Not connected",
                    lines=[f"Hearth said: {answer['error']} ({answer.get('error_description')})"],
                )
            response = self._token(
                {
                    "grant_type": "authorization_code",
                    "code": answer["code"],
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": flow.verifier,
                }
            )
            tokens = response.json()
            self.tokens.append(tokens)
            if response.status_code != 200:
                return render_template_string(PAGE, heading="Token error", lines=[tokens])
            if "id_token" in tokens and jwt_claims(tokens["id_token"]).get("nonce") != flow.nonce:
                abort(400)  # an ID token minted for another sign-in
            return render_template_string(
                PAGE,
                heading="Connected to Hearth",
                lines=[f"Scopes: {tokens['scope']}", f"Token type: {tokens['token_type']}"],
            )

        @app.get("/frame")
        def frame() -> str:
            """A page that tries to show Hearth inside an iframe, as a clickjacker would."""
            return render_template_string(
                PAGE, heading="Framed", lines=[], frame=request.args["src"]
            )

        return app
