"""Flask-WTF forms: every form carries a CSRF token; the API remains the judge of the values."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from frontend.api_client import ApiError, Json


class ApiForm(FlaskForm):
    """A form that can show the API's refusal: field messages by their fields, the rest on top."""

    # Refusals about what was typed; anything else (401 on a member page, 404, 5xx) is a page error.
    shows: frozenset[int] = frozenset({400, 409, 422, 429})

    def show(self, error: ApiError) -> int:
        """Attach the API's messages to the form and return the status to render it with."""
        if error.status not in self.shows:
            raise error
        for name, message in error.fields.items():
            # A list item's problem is named `field.index` (`redirect_uris.0`).
            head, _, index = name.partition(".")
            field = self._fields.get(name) or self._fields.get(head)
            if field is None:
                self.form_errors.append(f"{name}: {message}")
                continue
            label = field.label.text + (f" (line {int(index) + 1})" if index.isdigit() else "")
            # The API's messages are predicates ("must be at least 8 characters", "taken").
            field.errors = [*field.errors, f"{label} {message}"]
        self.form_errors.insert(0, error.description)
        return error.status


class LoginForm(ApiForm):
    shows = ApiForm.shows | {401}

    handle = StringField(
        "Handle",
        validators=[DataRequired(), Length(max=30)],
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=256)],
        render_kw={"autocomplete": "current-password"},
    )
    return_url = HiddenField()


class SignupForm(ApiForm):
    handle = StringField(
        "Handle",
        validators=[DataRequired(), Length(max=30)],
        description="3 to 30 letters, digits, '-' or '_'.",
        render_kw={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=256)],
        description="At least 8 characters; a phrase of a few words is easy to remember.",
        render_kw={"autocomplete": "new-password"},
    )
    email = EmailField(
        "Email",
        description="Optional.",
        validators=[Optional(), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    return_url = HiddenField()


class LogoutForm(ApiForm):
    """A CSRF token: signing out changes state, so a link alone must not do it."""

    return_url = HiddenField()


class ThreadForm(ApiForm):
    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    category = SelectField("Category", validators=[DataRequired()], choices=[])
    body = TextAreaField(
        "Message", validators=[DataRequired(), Length(max=100_000)], render_kw={"rows": 6}
    )


class ReplyForm(ApiForm):
    body = TextAreaField(
        "Your reply", validators=[DataRequired(), Length(max=100_000)], render_kw={"rows": 5}
    )


class ActionForm(ApiForm):
    """Only a CSRF token, for buttons that change state (revoke, rotate, delete)."""


class ConsentForm(ApiForm):
    request_id = HiddenField(validators=[DataRequired(), Length(max=200)])
    # The API judges which scopes may be kept; the page offers only the grantable ones.
    scopes = SelectMultipleField(validate_choice=False)
    # Sent by the Approve or Deny button, not by a field of its own.
    decision = StringField(validators=[AnyOf(["approve", "deny"])])


class RevokeForm(ApiForm):
    grant_id = HiddenField(validators=[DataRequired(), Length(max=200)])


class UnlinkForm(ApiForm):
    provider = HiddenField(validators=[DataRequired(), Length(max=40)])


GRANT_TYPES = [
    SelectChoice(
        "authorization_code", "Authorization code (people sign in through the consent page)"
    ),
    SelectChoice("refresh_token", "Refresh token (stay connected; needs offline_access)"),
    SelectChoice(
        "client_credentials", "Client credentials (the app acts as its owner, with no person)"
    ),
]
SCOPE_POLICIES = [
    SelectChoice("explicit", "Explicit: the app gets only scopes it asks for"),
    SelectChoice(
        "inherit",
        "Inherit: an app that asks for no scope gets every permission of the account it is allowed",
    ),
]


class ClientSettingsForm(ApiForm):
    """What an administrator may change on a registered client."""

    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=100)],
        description="Shown to people on the consent page and in their authorised apps.",
    )
    redirect_uris = TextAreaField(
        "Redirect URIs",
        description="One per line, matched exactly. https, or http on a loopback address.",
        render_kw={"rows": 3, "spellcheck": "false", "autocapitalize": "none"},
    )
    scopes = SelectMultipleField(
        "Allowed scopes",
        choices=[],
        description="What the app may ask for. People still see and can untick each one.",
    )
    grant_types = SelectMultipleField(
        "Grant types", choices=GRANT_TYPES, default=["authorization_code", "refresh_token"]
    )
    scope_policy = RadioField("Scope policy", choices=SCOPE_POLICIES, default="explicit")
    skip_consent = BooleanField(
        "Skip the consent page when the person has already approved this app",
        description="For first-party confidential apps only.",
    )

    def redirect_uri_list(self) -> list[str]:
        return [
            line.strip() for line in (self.redirect_uris.data or "").splitlines() if line.strip()
        ]

    def changes(self) -> Json:
        return {
            "name": (self.name.data or "").strip(),
            "redirect_uris": self.redirect_uri_list(),
            "scopes": " ".join(self.scopes.data or []),
            "grant_types": list(self.grant_types.data or []),
            "scope_policy": self.scope_policy.data,
            "skip_consent": bool(self.skip_consent.data),
        }


class NewClientForm(ClientSettingsForm):
    """A new client: also whether it keeps a secret, how it proves it, and who owns it."""

    client_type = RadioField(
        "Client type",
        choices=[
            SelectChoice("confidential", "Confidential: runs on a server and keeps a secret"),
            SelectChoice(
                "public", "Public: a browser or mobile app that cannot keep a secret (PKCE only)"
            ),
        ],
        default="confidential",
    )
    token_endpoint_auth_method = SelectField(
        "Client authentication",
        choices=[
            SelectChoice("client_secret_basic", "HTTP Basic (client_secret_basic)"),
            SelectChoice("client_secret_post", "In the form body (client_secret_post)"),
        ],
        description="How a confidential client sends its secret to the token endpoint.",
    )
    owner = StringField(
        "Owner",
        validators=[Optional(), Length(max=30)],
        description="Handle of the account the app acts as; required for client credentials.",
        render_kw={"autocapitalize": "none", "spellcheck": "false"},
    )

    def fields(self) -> Json:
        public = self.client_type.data == "public"
        return {
            **self.changes(),
            "public": public,
            "token_endpoint_auth_method": None if public else self.token_endpoint_auth_method.data,
            "owner": (self.owner.data or "").strip() or None,
        }
