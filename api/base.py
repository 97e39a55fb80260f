"""What every route of the API shares: role permissions, and input the database can store."""

from __future__ import annotations

from rest_framework.views import APIView

from api.errors import NUL, InvalidInput
from api.permissions import HasPermissions


class ApiView(APIView):
    permission_classes = [HasPermissions]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        for name, value in [*kwargs.items(), *request.query_params.items()]:
            if NUL in str(value):
                raise InvalidInput({name: "Must not contain NUL characters."})
