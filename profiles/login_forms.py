"""The login forms of the login page and the admin's: Django's, throttled (login_throttle.py).

A login from a throttled address is refused before its password is checked, so even the right
password does not get in until the wait is over; each failed password counts against the address.
"""

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from .login_throttle import (
    login_client_address,
    login_failure_record,
    login_refusal_record,
    login_throttled_message,
    login_wait_seconds,
)


class LoginForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        address = self._address()
        wait = login_wait_seconds(address=address)
        if wait is not None:
            login_refusal_record(address=address, wait=wait)
            raise ValidationError(login_throttled_message(wait), code="throttled")
        super().clean()  # returns self.cleaned_data, typed `| None` (an override may return None)
        return self.cleaned_data

    def get_invalid_login_error(self) -> ValidationError:
        # Django calls this exactly when authenticate() found no active user with that password.
        login_failure_record(address=self._address(), username=self._username())
        return super().get_invalid_login_error()

    def _address(self) -> str:
        return login_client_address(self.request) if self.request is not None else "unknown"

    def _username(self) -> str:
        return str(self.cleaned_data.get("username") or "")


class AdminLoginForm(LoginForm, AdminAuthenticationForm):
    """The admin's form (staff only, its own wording), throttled the same way: admin.site.login_form."""
