"""What every route of the API shares: role permissions, and input the database can store."""

from __future__ import annotations

from rest_framework.views import APIView

from api.errors import InvalidInput, unstorable_text
from api.permissions import HasPermissions


class ApiView(APIView):
    permission_classes = [HasPermissions]

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        given = {**kwargs, **request.query_params.dict()}
        if (problem := unstorable_text(given)) is not None:
            raise InvalidInput(dict([problem]))
