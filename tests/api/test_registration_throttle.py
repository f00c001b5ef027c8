"""Registration routes behind one NAT address: the resubmit password check shares login's throttle, and a trusted
NAT network gets a higher ceiling for registration uploads (issue 11 §5; REQ: AUTH-04)."""

from __future__ import annotations

import io

import pytest

from tests.api.test_login_throttle import (
    NAT,
    WRONG,
    assert_identical_429,
    built_app,
    login,
    spy_password_checks,
)
from tests.factories import VALID_ID_NUMBERS, image_bytes, institution, make_user, registration_form

OTHER = "198.51.100.30"


def resubmit(app, ip: str, username: str, password: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    csrf = client.get("/api/auth/csrf", environ_base={"REMOTE_ADDR": ip}).get_json()["csrf_token"]
    form = {"username": username, "password": password, "full_name": "刘二", "title": "主治医师"}
    photo = (io.BytesIO(image_bytes("PNG", color="green")), "qual.png")
    return client.post(
        "/api/registrations/resubmit",
        data=dict(form, qualification_photo=photo),
        headers={"X-CSRF-Token": csrf},
        environ_base={"REMOTE_ADDR": ip},
    )


def test_auth04_resubmit_shares_the_login_counters_and_the_identical_429(database_url, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """A rejected applicant's resubmit checks a password: one allowance with login, not a third one for a sprayer."""
    limits = {"login_user_ip_limit": "3 per 5 minutes", "login_ip_limit": "100 per 5 minutes"}
    with built_app(database_url, tmp_path / "i", **limits) as app:
        applicant = make_user(app, review_status="rejected", phone="13912345678", id_number=VALID_ID_NUMBERS[1])
        assert resubmit(app, NAT, applicant.username, WRONG).status_code == 401
        assert login(app.test_client(), NAT, applicant.username, WRONG).status_code == 401
        assert resubmit(app, NAT, applicant.username, WRONG).status_code == 401
        verified = spy_password_checks(monkeypatch)
        answers = [resubmit(app, NAT, applicant.username, p) for p in (applicant.password, WRONG)]
        answers.append(login(app.test_client(), NAT, applicant.username, applicant.password))
        assert verified == []  # throttled: the password was not looked at
        assert_identical_429(answers)
        # Another address is not held: the resubmit goes through there.
        r = resubmit(app, OTHER, applicant.username, applicant.password)
        assert r.status_code == 200, r.get_json()
        assert r.get_json()["review_status"] == "pending"
        assert verified  # checked there


@pytest.mark.parametrize(("trusted", "expected_last"), [(False, 429), (True, 400)])
def test_auth04_registration_uploads_from_a_trusted_nat_get_the_higher_ceiling(  # type: ignore[no-untyped-def]
    database_url, tmp_path, trusted, expected_last
):
    """20 registrations an hour per address, 200 from a trusted NAT network (a hospital onboarding its doctors)."""
    networks = "203.0.113.0/24" if trusted else ""
    with built_app(database_url, tmp_path / "i", login_trusted_networks=networks) as app:
        inst = institution(app, "M01")
        client = app.test_client()
        csrf = client.get("/api/auth/csrf", environ_base={"REMOTE_ADDR": NAT}).get_json()["csrf_token"]
        # Each request reaches the route and is counted; its ID number is wrong (400), so nothing is stored.
        codes = [
            client.post(
                "/api/registrations",
                data=registration_form(f"applicant{i}", inst.id, id_number="110101199003070000"),
                headers={"X-CSRF-Token": csrf},
                environ_base={"REMOTE_ADDR": NAT},
            ).status_code
            for i in range(21)
        ]
        assert codes[:20] == [400] * 20
        assert codes[20] == expected_last
