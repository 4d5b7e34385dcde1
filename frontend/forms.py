"""Flask-WTF forms: every form carries a CSRF token; the API remains the judge of the values."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from frontend.api_client import ApiError


class ApiForm(FlaskForm):
    """A form that can show the API's refusal: field messages by their fields, the rest on top."""

    # Refusals about what was typed; anything else (401 on a member page, 404, 5xx) is a page error.
    shows: frozenset[int] = frozenset({400, 409, 422, 429})

    def show(self, error: ApiError) -> int:
        """Attach the API's messages to the form and return the status to render it with."""
        if error.status not in self.shows:
            raise error
        for name, message in error.fields.items():
            field = self._fields.get(name)
            if field is None:
                self.form_errors.append(f"{name}: {message}")
            else:
                # The API's messages are predicates ("must be at least 8 characters", "taken").
                field.errors = [*field.errors, f"{field.label.text} {message}"]
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
    """Only a CSRF token: signing out changes state, so a link alone must not do it."""


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
