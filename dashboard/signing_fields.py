"""The "Signing" group of the endpoint form: the current and the next signing key.

A key is never sent back to the browser (password inputs that render empty), so a blank input is
a key left as it was shown: the form sends the mask for it, and the one rule of every door
(endpoints.secrets: the mask keeps the stored key) keeps it. A typed key replaces it, "generate"
makes a fresh one on the server and "remove" clears it. The endpoint page reveals keys through a
POST, for the receiver.
"""

from __future__ import annotations

from typing import Any

from django import forms

from calls import signing
from calls.masking import MASK

KEYS = ("signing_secret", "signing_secret_next")
# Per key: (generate option, remove option).
OPTIONS = {key: (f"generate_{key}", f"clear_{key}") for key in KEYS}
FIELDS = [name for key in KEYS for name in (key, *OPTIONS[key])]
EXTRA_FIELDS = [name for key in KEYS for name in OPTIONS[key]]


class SigningFieldsMixin(forms.Form):
    signing_secret = forms.CharField(
        required=False,
        max_length=500,
        label="Signing key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs every request by Standard Webhooks (webhook-signature): a whsec_ secret, "
        "best generated here. Blank keeps the stored key; the endpoint page reveals it for the "
        "receiver.",
    )
    generate_signing_secret = forms.BooleanField(required=False, label="Generate a new signing key")
    clear_signing_secret = forms.BooleanField(
        required=False, label="Remove the signing key (requests are no longer signed)"
    )
    signing_secret_next = forms.CharField(
        required=False,
        max_length=500,
        label="Next signing key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Rotation: set a next key, give it to the receivers (requests are signed with "
        "both meanwhile), then promote it on the endpoint page. Blank keeps the stored one.",
    )
    generate_signing_secret_next = forms.BooleanField(required=False, label="Generate a next key")
    clear_signing_secret_next = forms.BooleanField(required=False, label="Remove the next key")

    def describe_stored_keys(self) -> None:
        """Say on each key's field whether one is stored (never what it is)."""
        for key in KEYS:
            stored = bool(getattr(self.instance, key, ""))
            self.fields[key].widget.attrs["placeholder"] = (
                "•••••• stored: blank keeps it" if stored else "none"
            )

    def clean_signing_keys(self, cleaned: dict[str, Any]) -> None:
        for key in KEYS:
            generate, clear = (cleaned.get(name) for name in OPTIONS[key])
            typed = cleaned.get(key) or ""
            if generate and clear:
                self.add_error(OPTIONS[key][1], "Generate a key or remove it, not both.")
                continue
            if generate:
                cleaned[key] = signing.new_secret()
            elif clear:
                cleaned[key] = ""
            elif not typed:
                cleaned[key] = MASK if getattr(self.instance, key, "") else ""
