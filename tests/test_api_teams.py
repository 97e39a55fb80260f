"""Seed 003's "Team scope": `teamId` is stored, echoed and filterable."""

from __future__ import annotations

import pytest

from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]

ACTIONS = "/api/v1/devtools/scheduled-actions"


def create(client, team_id=None, **extra) -> str:
    body = {"actionType": "billing:check-renewals", "payload": {}, **extra}
    if team_id is not None:
        body["teamId"] = team_id
    response = client.post(ACTIONS, body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()["data"]["id"]


def test_the_team_is_stored_and_echoed(as_editor, renewals_handler):
    action_id = create(as_editor, "team-uuid")

    assert Endpoint.objects.get(uuid=action_id).team_id == "team-uuid"
    assert as_editor.get(f"{ACTIONS}/{action_id}").json()["data"]["teamId"] == "team-uuid"
    (listed,) = as_editor.get(ACTIONS).json()["data"]["actions"]
    assert listed["teamId"] == "team-uuid"


def test_no_team_is_shown_as_null(as_editor, renewals_handler):
    for given in (None, "", None):
        action_id = create(as_editor, given)
        assert as_editor.get(f"{ACTIONS}/{action_id}").json()["data"]["teamId"] is None


@pytest.mark.parametrize("parameter", ["teamId", "team_id"])
def test_the_list_filters_by_team(as_editor, renewals_handler, parameter):
    ours = create(as_editor, "team-a")
    create(as_editor, "team-b")
    create(as_editor)

    page = as_editor.get(ACTIONS, {parameter: "team-a"}).json()["data"]

    assert [action["id"] for action in page["actions"]] == [ours]
    assert page["pagination"]["total"] == 1


def test_an_overlong_team_is_a_400_and_saves_nothing(as_editor, renewals_handler):
    response = as_editor.post(
        ACTIONS,
        {"actionType": "billing:check-renewals", "payload": {}, "teamId": "t" * 101},
        format="json",
    )
    assert response.status_code == 400 and "teamId" in response.json()["details"]
    assert not Endpoint.objects.exists()
